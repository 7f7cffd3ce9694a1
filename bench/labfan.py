"""A two-machine fan for the data-plane and disruption benchmarks: the real charm on namespaces."""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
from collections.abc import Iterator
from typing import Any

from tests.e2e.conftest import ADDRESSES, MAPPING, segment_of

FAN_MTU = 1450


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


def flow(lab: Any, src: Any, dst: str, rate: int = 100, size: int = 56) -> Any:
    """A `rate` packets/s DF ping flow of `size`-byte payloads around a change (lab.ping_flow)."""
    from tests.e2e.lab import ping_flow

    return ping_flow(lab, src.name, dst, rate, size)
