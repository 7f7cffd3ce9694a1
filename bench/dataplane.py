"""Data-plane throughput: container to container over the fan against host to host over the underlay.

Two machines (namespaces on one underlay bridge, MTU 1500) carry the real charm's fan,
one container each (MTU 1450). In one run, alternating case by case so the ratios hold
on a noisy machine: iperf3 TCP and UDP host to host (underlay) and container to
container (vxlan), then the same after `direct-routing=true` is set through the model
(no encapsulation between same-subnet peers). UDP offers 2 Gbit/s of the largest
datagrams that fit unfragmented (MTU - 28 bytes). IPv4 fragments created are counted over
every namespace for each case, and a DF ping of MTU - 28 bytes checks the path MTU.
"""

from __future__ import annotations

from typing import Any

from bench import common
from bench.common import median, table
from bench.labfan import FAN_MTU, fan_lab

UNDERLAY_MTU = 1500
UDP_RATE = "2G"


def _iperf(
    lab: Any, server_ns: str, client_ns: str, address: str, *, seconds: float, udp_mtu: int | None
) -> dict:
    from tests.e2e.lab import frag_creates, iperf3

    namespaces = lab.namespaces()
    before = frag_creates(namespaces)
    extra = ["-u", "-b", UDP_RATE, "-l", str(udp_mtu - 28)] if udp_mtu else []
    try:
        figures = iperf3(lab, server_ns, client_ns, address, seconds=seconds, extra=extra)
    except RuntimeError as e:  # e.g. EMSGSIZE with a cold PMTU cache: report, don't abort
        figures = {"gbps": 0.0, "error": str(e)[:120]}
    figures["frags"] = frag_creates(namespaces) - before
    return figures


def _df_ping(lab: Any, src: Any, dst: str, mtu: int) -> tuple[bool, int]:
    from tests.e2e.lab import frag_creates

    before = frag_creates(lab.namespaces())
    result = src.exec(
        "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-M", "do", "-s", str(mtu - 28), dst, check=False
    )
    return result.returncode == 0, frag_creates(lab.namespaces()) - before


def run(quick: bool) -> None:
    reps, seconds = (3, 2) if quick else (3, 5)
    rows: list[list[Any]] = []
    pings: list[list[Any]] = []
    errors: list[str] = []
    with fan_lab("d") as (lab, model):
        h1, h2 = lab.machines["h1"], lab.machines["h2"]
        c1, c2 = h1.containers[0], h2.containers[0]
        for phase, direct in (("vxlan", False), ("direct-routing", True)):
            if direct:
                model.set_config(direct_routing=True)
            cases = {
                ("TCP", "underlay"): (h2.ns, h1.ns, str(h2.address.ip), None),
                ("TCP", phase): (c2.name, c1.name, str(c2.address.ip), None),
                ("UDP", "underlay"): (h2.ns, h1.ns, str(h2.address.ip), UNDERLAY_MTU),
                ("UDP", phase): (c2.name, c1.name, str(c2.address.ip), FAN_MTU),
            }
            results: dict[tuple[str, str], list[dict]] = {case: [] for case in cases}
            for _ in range(reps):
                for case, (server, client, address, udp_mtu) in cases.items():
                    results[case].append(
                        _iperf(lab, server, client, address, seconds=seconds, udp_mtu=udp_mtu)
                    )
            for proto in ("TCP", "UDP"):
                base = median([r["gbps"] for r in results[(proto, "underlay")]])
                for path in ("underlay", phase):
                    runs = results[(proto, path)]
                    gbps = median([r["gbps"] for r in runs])
                    rows.append([
                        phase, proto, "host -> host" if path == "underlay" else "container -> container",
                        " ".join(f"{r['gbps']:.2f}" for r in runs), gbps, gbps / base if base else float("nan"),
                        median([r.get("lost_percent", float("nan")) for r in runs]) if proto == "UDP" else "-",
                        median([r.get("retransmits", float("nan")) for r in runs]) if proto == "TCP" else "-",
                        sum(r["frags"] for r in runs),
                    ])  # fmt: skip
                    errors += [f"{phase} {proto} {path}: {r['error']}" for r in runs if "error" in r]
            ok, frags = _df_ping(lab, c1, str(c2.address.ip), FAN_MTU)
            pings.append([phase, f"{FAN_MTU - 28} B, DF", "passes" if ok else "FAILS", frags])
    table(
        f"dataplane: iperf3 throughput, {reps} runs of {seconds} s per case, cases alternating "
        f"(Gbit/s received; UDP offers {UDP_RATE}bit/s of MTU-28-byte datagrams)",
        ["phase", "proto", "path", "runs", "median", "x underlay", "UDP loss %", "TCP retr", "frags"],
        rows,
        notes=[
            "x underlay = median / the same phase's host -> host median (same protocol)",
            "frags = IPv4 fragments created (FragCreates) over every namespace during that case's runs",
            "targets: vxlan >= 0.80 of underlay, direct-routing >= 0.95, 0 fragments",
            *errors,
        ],
    )  # fmt: skip
    table(
        "dataplane: largest DF ping container -> container (3 packets)",
        ["phase", "payload", "result", "frags"],
        pings,
    )


if __name__ == "__main__":
    common.main(run)
