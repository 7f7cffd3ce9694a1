"""Machines and containers as network namespaces, on one underlay bridge.

    <prefix>ul           underlay: bridge ulbr0 (MTU 1500), one veth port per machine
    <prefix>h1 .. hN     machines: eth0 on the underlay (10.123.x.y/16), the charm's fan
    <prefix>h1c1 ..      containers: eth0 on the machine's fan bridge, address from its segment

Every namespace name starts with a unique prefix, everything is deleted on close (also
after a failure), the root namespace's links, routes and firewall are never touched, and
traffic only goes to addresses inside these namespaces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

UNDERLAY = ipaddress.IPv4Network("10.123.0.0/16")
UNDERLAY_MTU = 1500


def run(argv: Sequence[str], check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def is_root() -> bool:
    return os.geteuid() == 0


@dataclasses.dataclass(eq=False)
class Container:
    name: str  # namespace
    address: ipaddress.IPv4Interface
    host_port: str  # the veth end on the machine, enslaved to the fan bridge

    def exec(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", self.name, *argv], check=check, timeout=timeout)


@dataclasses.dataclass(eq=False)
class LabMachine:
    """One machine: a namespace, an underlay address and a directory for its files."""

    name: str  # short name, e.g. h1
    ns: str
    address: ipaddress.IPv4Interface
    root: Path
    machine_id: str
    containers: list[Container] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # extra environment for its hooks
    # Put before its hooks' command line, e.g. nsenter into a mount namespace with a full disk.
    hook_prefix: list[str] = dataclasses.field(default_factory=list)

    def exec(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", self.ns, *argv], check=check, timeout=timeout)


class Lab:
    """A throwaway set of namespaces; use as a context manager."""

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix or f"fane2e{secrets.token_hex(3)}-"
        self.underlay_ns = f"{self.prefix}ul"
        self.workdir = Path(tempfile.mkdtemp(prefix="fan-e2e-"))
        self.machines: dict[str, LabMachine] = {}
        self._processes: list[subprocess.Popen[str]] = []
        self._namespaces: list[str] = []

    def __enter__(self) -> Lab:
        self._add_ns(self.underlay_ns)
        ul = self.underlay_ns
        run(["ip", "-n", ul, "link", "add", "ulbr0", "mtu", str(UNDERLAY_MTU), "type", "bridge"])
        run(["ip", "-n", ul, "link", "set", "ulbr0", "up"])
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in self._processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
        for ns in reversed(self._namespaces):
            run(["ip", "netns", "del", ns], check=False)
        self._namespaces.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- topology ---------------------------------------------------------------------

    def add_machine(self, name: str, address: str) -> LabMachine:
        """A machine on the underlay with `address` (in 10.123.0.0/16) on its eth0."""
        ns = f"{self.prefix}{name}"
        iface = ipaddress.IPv4Interface(f"{address}/{UNDERLAY.prefixlen}")
        root = self.workdir / name
        root.mkdir()
        machine = LabMachine(name, ns, iface, root, str(len(self.machines) + 1))
        self.machines[name] = machine
        self._wire_machine(machine)
        return machine

    def _wire_machine(self, machine: LabMachine) -> None:
        self._add_ns(machine.ns)
        port = f"ul-{machine.name}"
        run([
            "ip", "-n", self.underlay_ns, "link", "add", port, "mtu", str(UNDERLAY_MTU),
            "type", "veth", "peer", "name", "eth0", "mtu", str(UNDERLAY_MTU), "netns", machine.ns,
        ])  # fmt: skip
        run(["ip", "-n", self.underlay_ns, "link", "set", port, "master", "ulbr0", "up"])
        run(["ip", "-n", machine.ns, "addr", "add", str(machine.address), "dev", "eth0"])
        run(["ip", "-n", machine.ns, "link", "set", "eth0", "up"])

    def wipe_machine(self, machine: LabMachine) -> None:
        """A reboot as the kernel sees it: the namespace and everything in it is recreated empty.

        The underlay NIC keeps its MAC, as a real machine's does (peers' ARP caches stay valid).
        """
        mac = json.loads(machine.exec("ip", "-j", "link", "show", "eth0").stdout)[0]["address"]
        for container in machine.containers:
            run(["ip", "netns", "del", container.name], check=False)
            self._namespaces.remove(container.name)
        machine.containers.clear()
        run(["ip", "netns", "del", machine.ns])
        self._namespaces.remove(machine.ns)
        run(["ip", "-n", self.underlay_ns, "link", "del", f"ul-{machine.name}"], check=False)
        self._wire_machine(machine)
        run(["ip", "-n", machine.ns, "link", "set", "eth0", "address", mac])

    def cut_off(self, machine: LabMachine, cut: bool = True) -> None:
        """Unplug (or plug back) a machine's underlay cable."""
        state = "down" if cut else "up"
        run(["ip", "-n", self.underlay_ns, "link", "set", f"ul-{machine.name}", state])

    def remove_machine(self, machine: LabMachine) -> None:
        for container in machine.containers:
            run(["ip", "netns", "del", container.name], check=False)
            self._namespaces.remove(container.name)
        run(["ip", "netns", "del", machine.ns], check=False)
        self._namespaces.remove(machine.ns)
        run(["ip", "-n", self.underlay_ns, "link", "del", f"ul-{machine.name}"], check=False)
        del self.machines[machine.name]

    def add_container(
        self, machine: LabMachine, address: ipaddress.IPv4Interface | None, bridge: str, mtu: int
    ) -> Container:
        """A container behind the machine's fan bridge, with `address` and the gateway as default route.

        Without an address the container is left unconfigured (to ask DHCP for one).
        """
        index = len(machine.containers) + 1
        ns = f"{machine.ns}c{index}"
        self._add_ns(ns)
        port = f"vc{index}"
        run([
            "ip", "-n", machine.ns, "link", "add", port, "mtu", str(mtu),
            "type", "veth", "peer", "name", "eth0", "mtu", str(mtu), "netns", ns,
        ])  # fmt: skip
        run(["ip", "-n", machine.ns, "link", "set", port, "master", bridge, "up"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        if address is not None:
            run(["ip", "-n", ns, "addr", "add", str(address), "dev", "eth0"])
            run(["ip", "-n", ns, "route", "add", "default", "via", str(address.network.network_address + 1)])
        container = Container(ns, address or ipaddress.IPv4Interface("0.0.0.0/0"), port)
        machine.containers.append(container)
        return container

    def background(self, ns: str, *argv: str) -> subprocess.Popen[str]:
        """A process in namespace `ns`, killed when the lab closes."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._processes.append(proc)
        return proc

    def _add_ns(self, ns: str) -> None:
        run(["ip", "netns", "add", ns])
        self._namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def namespaces(self) -> list[str]:
        return list(self._namespaces)


@contextlib.contextmanager
def lab(prefix: str | None = None) -> Iterator[Lab]:
    with Lab(prefix) as built:
        yield built


@contextlib.contextmanager
def ping_flow(
    lab: Lab, src_ns: str, dst: str, rate: int = 100, size: int | None = None
) -> Iterator[dict[str, int]]:
    """A `rate` packets/s ping flow from `src_ns` to `dst` around the block; yields its counts.

    It starts a second before the block and ends 1.5 s after, so it brackets the change.
    With `size`, packets carry that payload with DF set. After the block the counts hold
    sent, received and lost (the one packet that may be in flight at the end not counted).
    """
    sized = ["-M", "do", "-s", str(size)] if size is not None else []
    proc = lab.background(src_ns, "ping", "-n", "-q", *sized, "-i", str(1 / rate), "-W", "1", dst)
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
        counts["lost"] = max(0, counts["sent"] - counts["received"] - 1)


def frag_creates(namespaces: Sequence[str]) -> int:
    """IPv4 fragments created, summed over namespaces (from /proc/net/snmp)."""
    total = 0
    for ns in namespaces:
        lines = run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]).stdout.splitlines()
        ip_lines = [line.split() for line in lines if line.startswith("Ip:")]
        header, values = ip_lines[0], ip_lines[1]
        total += int(values[header.index("FragCreates")])
    return total


def iperf3(
    lab: Lab, server_ns: str, client_ns: str, address: str, seconds: float = 5, extra: Sequence[str] = ()
) -> dict[str, float]:
    """One iperf3 run from `client_ns` to a one-off server on `address` in `server_ns`.

    Returns gbps (received), and for UDP lost_percent, for TCP retransmits.
    """
    server = lab.background(server_ns, "iperf3", "-s", "-1", "-B", address)
    try:
        for _ in range(50):  # wait until the server listens
            probe = run(["ip", "netns", "exec", server_ns, "ss", "-ltn", "sport = :5201"], check=False)
            if ":5201" in probe.stdout:
                break
            time.sleep(0.1)
        result = run(
            ["ip", "netns", "exec", client_ns, "iperf3", "-c", address, "-t", str(seconds), "-J", *extra],
            check=False,
            timeout=seconds + 30,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=5)
    data = json.loads(result.stdout or "{}")
    if "error" in data or "end" not in data:
        raise RuntimeError(f"iperf3 failed: {data.get('error', result.stderr)}")
    end = data["end"]
    received = end["sum_received"] if "sum_received" in end else end["sum"]
    figures = {"gbps": received["bits_per_second"] / 1e9}
    if "lost_percent" in received:
        figures["lost_percent"] = received["lost_percent"]
    if "sum_sent" in end:
        figures["retransmits"] = float(end["sum_sent"].get("retransmits", 0))
    return figures
