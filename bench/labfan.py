"""A two-machine fan for the data-plane and disruption benchmarks: the real charm on namespaces."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any

import fan

MAPPING = "10.123.0.0/16=250.0.0.0/8"
ADDRESSES = {"h1": "10.123.1.10", "h2": "10.123.2.20", "h3": "10.123.3.30"}
FAN_MTU = 1450


def segment_of(machine: Any, mapping: str = MAPPING) -> ipaddress.IPv4Network:
    return fan.host_segment(fan.parse_fan_config(mapping)[0], machine.address.ip)


def add_container(lab: Any, machine: Any, mtu: int = FAN_MTU) -> Any:
    segment = segment_of(machine)
    address = segment.network_address + 2 + len(machine.containers)
    return lab.add_container(
        machine, ipaddress.IPv4Interface(f"{address}/{segment.prefixlen}"), "fan-250", mtu
    )


@contextlib.contextmanager
def fan_lab(name: str, machines: int = 2, containers: int = 1) -> Iterator[tuple[Any, Any]]:
    """A Lab with `machines` machines carrying the charm's fan, and containers on each."""
    from tests.e2e.lab import Lab
    from tests.e2e.model import Model

    with Lab(prefix=f"fanb{name}{secrets.token_hex(2)}-") as lab:
        hosts = [lab.add_machine(n, a) for n, a in list(ADDRESSES.items())[:machines]]
        model = Model(lab, {"fan-config": MAPPING})
        model.deploy(hosts)
        for host in hosts:
            for _ in range(containers):
                add_container(lab, host)
        yield lab, model


@contextlib.contextmanager
def flow(lab: Any, src: Any, dst: str, rate: int = 100, size: int = 56) -> Iterator[dict[str, int]]:
    """A `rate` packets/s ping flow (DF, `size` bytes of payload) around the block; yields its counts.

    It starts a second before the block and ends 1.5 s after, so it brackets the change.
    """
    proc = lab.background(
        src.name, "ping", "-n", "-q", "-M", "do", "-s", str(size), "-i", str(1 / rate), "-W", "1", dst
    )
    time.sleep(1)
    counts: dict[str, int] = {}
    try:
        yield counts
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGINT)  # ping prints its statistics on SIGINT
        out, err = proc.communicate(timeout=10)
        match = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        if match is None:
            raise RuntimeError(f"ping gave no statistics: {out} {err}")
        counts.update(sent=int(match.group(1)), received=int(match.group(2)))
        # The packet sent just before SIGINT may still be in flight: allow that one only.
        counts["lost"] = max(0, counts["sent"] - counts["received"] - 1)
