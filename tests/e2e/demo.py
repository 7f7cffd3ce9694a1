"""The local demo: the charm gives three machines a FAN, without a Juju controller.

Run as root (`tox -e demo`, or `python -m tests.e2e.demo`). It builds three machines with
two containers each as network namespaces on one underlay, runs the charm's hooks on every
machine (the real charm through ops.testing; tests/e2e/model.py plays Juju), prints
container-to-container reachability with round-trip times and an iperf3 throughput figure
for the fan against the underlay, removes the charm (its teardown) and deletes everything.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import re
import shutil
import sys
import time

from tests.e2e.lab import Container, Lab, LabMachine, iperf3, is_root, run
from tests.e2e.model import REPO, Model

sys.path[:0] = [str(REPO / "src"), str(REPO / "lib")]  # the charm's modules, as dispatch does
import fan  # noqa: E402

MAPPING = "10.123.0.0/16=250.0.0.0/8"
MACHINES = {"h1": "10.123.1.10", "h2": "10.123.2.20", "h3": "10.123.3.30"}
_RTT = re.compile(r"= [\d.]+/([\d.]+)/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5, help="length of each iperf3 run (default 5)")
    args = parser.parse_args(argv)
    if not is_root():
        print("the demo builds network namespaces: run it as root", file=sys.stderr)
        return 2
    missing = [t for t in ("ip", "ping", "iperf3", "nft", "ss") if shutil.which(t) is None]
    if missing:
        print(f"missing tools: {', '.join(missing)} (run: bash .ci/setup)", file=sys.stderr)
        return 2

    started = time.monotonic()
    with Lab(prefix=None) as lab:
        machines = [lab.add_machine(name, address) for name, address in MACHINES.items()]
        print(
            f"fan-networking demo: {len(machines)} machines on underlay 10.123.0.0/16, fan-config {MAPPING}"
        )
        print("(machines and containers are network namespaces; the charm's hooks run for real in each)\n")
        model = Model(lab, {"fan-config": MAPPING})
        model.deploy(machines)
        print_units(model)
        mapping = fan.parse_fan_config(MAPPING)[0]
        for machine in machines:
            segment = fan.host_segment(mapping, machine.address.ip)
            for host in (2, 3):
                lab.add_container(machine, _iface(segment, host), fan.bridge_name(mapping), 1450)
        print_reachability(machines)
        print_throughput(lab, machines[0], machines[1], args.seconds)

        for unit in list(model.units.values()):
            model.remove_unit(unit, settle=False)
        leftovers = {
            m.name: run(["ip", "netns", "exec", m.ns, "ip", "-br", "link"]).stdout.split()[::3]
            for m in machines
        }
        charm_links = sorted(
            n for names in leftovers.values() for n in names if n.startswith(("fan-", "vx-"))
        )
        print(
            f"\nremoved the charm from every machine: {charm_links if charm_links else 'no fan links left'}"
        )
    left = [ns for ns in run(["ip", "netns", "list"]).stdout.split() if ns.startswith(lab.prefix)]
    print(
        f"deleted every namespace ({left if left else 'none left'}); {time.monotonic() - started:.0f} s in all"
    )
    return 0 if not left and not charm_links else 1


def _iface(segment, host: int):  # type: ignore[no-untyped-def]
    import ipaddress

    return ipaddress.IPv4Interface(f"{segment.network_address + host}/{segment.prefixlen}")


def print_units(model: Model) -> None:
    print(f"{'unit':<18} {'machine':<8} {'underlay':<13} status")
    for unit in model.units.values():
        status, message = unit.status
        print(f"{unit.name:<18} {unit.machine.name:<8} {unit.machine.address.ip!s:<13} {status}: {message}")


def print_reachability(machines: list[LabMachine]) -> None:
    containers = [(m, c) for m in machines for c in m.containers]

    def rtt(src: Container, dst: Container) -> str:
        out = src.exec(
            "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", str(dst.address.ip), check=False
        ).stdout
        match = _RTT.search(out)
        return f"{float(match.group(1)):.3f}" if match else "FAIL"

    pairs = [(s, d) for _, s in containers for _, d in containers if s is not d]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(pairs, pool.map(lambda p: rtt(*p), pairs), strict=False))
    names = [f"{m.name}:{c.address.ip}" for m, c in containers]
    width = max(len(n) for n in names) + 2
    print("\nreachability: average round trip in ms over the fan (FAIL = unreachable)")
    print(f"{'from / to':<{width}}" + "".join(f"{n:>{width}}" for n in names))
    for (_, src), name in zip(containers, names, strict=False):
        row = [results.get((src, dst), "-") if src is not dst else "-" for _, dst in containers]
        print(f"{name:<{width}}" + "".join(f"{cell:>{width}}" for cell in row))
    failures = sum(1 for value in results.values() if value == "FAIL")
    print(f"{len(results) - failures} of {len(results)} container pairs reachable")


def print_throughput(lab: Lab, a: LabMachine, b: LabMachine, seconds: float) -> None:
    print(f"\nthroughput: iperf3, TCP, one stream, {seconds:g} s each")
    underlay = iperf3(lab, b.ns, a.ns, str(b.address.ip), seconds)
    overlay = iperf3(
        lab, b.containers[0].name, a.containers[0].name, str(b.containers[0].address.ip), seconds
    )
    print(f"  underlay  {a.name} -> {b.name}            {underlay['gbps']:6.2f} Gbit/s")
    print(
        f"  fan       {a.name}:{a.containers[0].address.ip} -> {b.name}:{b.containers[0].address.ip}"
        f"  {overlay['gbps']:6.2f} Gbit/s  ({overlay['gbps'] / underlay['gbps']:.2f} of underlay, vxlan)"
    )


if __name__ == "__main__":
    sys.exit(main())
