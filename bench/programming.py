"""How long programming peers takes: the batched diff the charm uses against one process per entry.

One namespace with one underlay veth (10.123.0.1/16); synthetic peers 10.123.0.2, .3, ...
are parsed from databags the way the charm gets them (PeerInfo.from_databag), planned with
plan.build_plan and applied with VxlanPlane, whose parts are timed one by one:
desired_state, read_kernel, diff, _run (the writes) and _ensure_forwarding. The naive
baseline runs exactly the same commands as the batched apply, one `ip`/`bridge` process
per line.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from typing import Any

from bench import common
from bench.common import median, table, worker

MAPPING = "10.123.0.0/16=250.0.0.0/8"
LOCAL = "10.123.0.1"


def run(quick: bool) -> None:
    from tests.e2e.lab import Lab

    sizes = [100, 1000, 5000]
    request = {
        "sizes": sizes,
        "reps": 3 if quick else 5,
        "naive": [100, 1000] if quick else [100, 1000, 5000],
    }
    with Lab(prefix=f"fanbp{_token()}-") as lab:
        machine = lab.add_machine("p1", LOCAL)
        request["root"] = str(machine.root)
        result = worker(machine.ns, "bench.programming", request, timeout=900)
    report(result)


def report(result: dict[str, Any]) -> None:
    rows = []
    for case in result["cases"]:
        p = case["parts"]
        rows.append([
            case["name"], case["peers"], case["changes"], case["lines"], case["apply"],
            p["desired_state"], p["read_kernel"], p["diff"], p["write"], p["forwarding"],
            case["apply"] + case["plan"], case["plan"],
        ])  # fmt: skip
    table(
        "programming: VxlanPlane.apply_kernel on a namespace (seconds, median of "
        f"{result['reps']}; changes = len(Batches), lines = ip/bridge batch lines)",
        ["case", "peers", "changes", "lines", "apply", "desired", "read", "diff", "write", "fwd",
         "plan+apply", "plan"],
        rows,
        notes=[
            "apply = VxlanPlane.apply_kernel timed whole (what every other hook does: read the kernel, diff,",
            "write); desired..fwd = the same steps timed one by one; 'peer hook' rows = what a peer",
            "relation hook does: vxlan.peer_changes (in the desired column) and the write, no kernel dump",
            "plan = PeerInfo.from_databag for every peer + plan.build_plan (what a hook adds before apply)",
            "targets: 5,000 peers from nothing <= 0.5 s; join/leave with 5,000 present <= 0.050 s and "
            "<= 10 changes; no-op 0 changes",
        ],
    )  # fmt: skip
    rows = [
        [n["peers"], n["processes"], n["naive"], n["batched"], n["naive"] / n["batched"]]
        for n in result["naive"]
    ]
    table(
        "programming: the same commands from nothing, one process per line vs batched (seconds)",
        ["peers", "processes", "one per line", "batched", "ratio"],
        rows,
        notes=["batched = the _run step (3 batch processes + nft); one per line also runs that nft once"],
    )
    table(
        "programming: inserting N per-peer routes in one ip -batch, as the plane does vs with nexthop objects (seconds)",
        ["routes", "via gw dev vx onlink", "nexthops", "routes nhid", "nexthop total"],
        result["forms"],
        notes=[
            "the kernel hashes route attributes (fib_info) by device, not by gateway: N routes via one",
            "device share a bucket and inserting them is O(N^2); routes on nexthop objects hash by id",
        ],
    )


# -- the worker, inside the namespace ----------------------------------------------------


def _peers(count: int) -> list[Any]:
    from plan import PeerInfo

    base = int(ipaddress.IPv4Address(LOCAL)) + 1
    return [
        PeerInfo.from_databag(
            f"fan-networking/{i + 1}",
            {
                "underlay-addresses": json.dumps([str(ipaddress.IPv4Address(base + i))]),
                "machine": json.dumps(str(i + 1)),
                "fan-kernel": "false",
            },
        )
        for i in range(count)
    ]


def _databags(count: int) -> list[tuple[str, dict[str, str]]]:
    base = int(ipaddress.IPv4Address(LOCAL)) + 1
    return [
        (
            f"fan-networking/{i + 1}",
            {
                "underlay-addresses": json.dumps([str(ipaddress.IPv4Address(base + i))]),
                "machine": json.dumps(str(i + 1)),
                "fan-kernel": "false",
            },
        )
        for i in range(count)
    ]


def _plan(bags: list[tuple[str, dict[str, str]]]) -> tuple[list[Any], float]:
    import fan
    import plan
    from machine import HostAddress

    start = time.perf_counter()
    peers = [plan.PeerInfo.from_databag(unit, data) for unit, data in bags]
    fans = plan.build_plan(
        fan.parse_fan_config(MAPPING),
        [HostAddress(ipaddress.IPv4Interface(f"{LOCAL}/16"), "eth0", 1500)],
        peers,
        plan.Options(),
        "0",
    )
    return fans, time.perf_counter() - start


def _parts(plane: Any, fans: list[Any]) -> tuple[dict[str, float], Any]:
    import vxlan

    t = [time.perf_counter()]
    desired = vxlan.desired_state(fans)
    t.append(time.perf_counter())
    observed = plane.read_kernel(desired.links)
    t.append(time.perf_counter())
    batches = vxlan.diff(desired, observed)
    t.append(time.perf_counter())
    plane._run(batches)
    t.append(time.perf_counter())
    plane._ensure_forwarding()
    t.append(time.perf_counter())
    names = ["desired_state", "read_kernel", "diff", "write", "forwarding"]
    return {n: t[i + 1] - t[i] for i, n in enumerate(names)}, batches


def _whole(plane: Any, fans: list[Any]) -> tuple[float, int]:
    start = time.perf_counter()
    changes = plane.apply_kernel(fans)
    return time.perf_counter() - start, len(changes)


def _reset(plane: Any) -> None:
    import vxlan

    plane._run(vxlan.diff(vxlan.KernelState(), plane.read_kernel({})))


def _case(
    name: str, plane: Any, before: list[Any] | None, fans: list[Any], *, reps: int, plan_s: float
) -> dict:
    """Time going from `before` (None: nothing) to `fans`, whole and in parts, `reps` times each."""
    wholes, parts, counts = [], [], []
    batches = None
    for _ in range(reps):
        for mode in ("whole", "parts"):
            _reset(plane) if before is None else plane.apply_kernel(before)
            if mode == "whole":
                seconds, count = _whole(plane, fans)
                wholes.append(seconds)
                counts.append(count)
            else:
                timing, batches = _parts(plane, fans)
                parts.append(timing)
    assert batches is not None
    return {
        "name": name,
        "peers": sum(len(f.peers) for f in fans),
        "changes": median(counts),
        "lines": len(batches.links) + len(batches.fdb) + len(batches.peers),
        "apply": median(wholes),
        "parts": {k: median([p[k] for p in parts]) for k in parts[0]},
        "plan": plan_s,
    }


def _peer_case(
    name: str, plane: Any, before: list[Any], fans: list[Any], *, reps: int, plan_s: float
) -> dict:
    """Time a peer hook's path: only the changed peers' entries, no kernel dump (VxlanPlane.apply
    with `since`); its desired+diff column holds vxlan.peer_changes."""
    import vxlan

    rows = []
    for _ in range(reps):
        plane.apply_kernel(before)
        t = [time.perf_counter()]
        batches = vxlan.peer_changes(before, fans)
        assert batches is not None, "only peers differ between these plans"
        t.append(time.perf_counter())
        plane._run(batches)
        t.append(time.perf_counter())
        plane._ensure_forwarding()
        t.append(time.perf_counter())
        rows.append((t[3] - t[0], t[1] - t[0], t[2] - t[1], t[3] - t[2], len(batches)))
    return {
        "name": name,
        "peers": sum(len(f.peers) for f in fans),
        "changes": median([r[4] for r in rows]),
        "lines": median([r[4] for r in rows]),
        "apply": median([r[0] for r in rows]),
        "parts": {
            "desired_state": median([r[1] for r in rows]),
            "read_kernel": 0.0,
            "diff": 0.0,
            "write": median([r[2] for r in rows]),
            "forwarding": median([r[3] for r in rows]),
        },
        "plan": plan_s,
    }


def _naive(plane: Any, fans: list[Any]) -> dict[str, Any]:
    import vxlan

    _reset(plane)
    desired = vxlan.desired_state(fans)
    batches = vxlan.diff(desired, plane.read_kernel(desired.links))
    start = time.perf_counter()
    for tool, lines in (("ip", batches.links), ("bridge", batches.fdb), ("ip", batches.peers)):
        for line in lines:
            subprocess.run([tool, *line.split()], check=True, capture_output=True)
    plane._run(vxlan.Batches(nat=batches.nat))
    naive = time.perf_counter() - start
    _reset(plane)
    start = time.perf_counter()
    plane._run(batches)
    batched = time.perf_counter() - start
    processes = len(batches.links) + len(batches.fdb) + len(batches.peers)
    return {
        "peers": sum(len(f.peers) for f in fans),
        "processes": processes,
        "naive": naive,
        "batched": batched,
    }


def _batch(lines: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["ip", "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True, capture_output=True
    )
    return time.perf_counter() - start


def _route_forms(sizes: list[int]) -> list[list[Any]]:
    """Time inserting per-peer routes in the form the plane uses, and with nexthop objects.

    IPv4 keys its table of route attributes (fib_info) by device, not gateway: every
    `via <peer gateway> dev vx-…` route lands in one hash bucket, so inserting N of them
    costs O(N^2). Routes that name a nexthop object (`nhid`) hash by its id instead.
    """
    subprocess.run(["ip", "link", "add", "vxbench", "type", "vxlan", "id", "99", "dstport", "8473",
                    "local", LOCAL, "nolearning"], check=True)  # fmt: skip
    subprocess.run(["ip", "link", "set", "vxbench", "up"], check=True)
    rows = []
    try:
        for size in sizes:
            nets = [f"250.{(i + 2) >> 8 & 255}.{(i + 2) & 255}" for i in range(size)]
            via = _batch([f"route replace {n}.0/24 via {n}.1 dev vxbench onlink proto 250" for n in nets])
            _batch([f"route del {n}.0/24 proto 250" for n in nets])
            hops = _batch(
                [
                    f"nexthop replace id {i + 1} via {n}.1 dev vxbench onlink proto 250"
                    for i, n in enumerate(nets)
                ]
            )
            nhid = _batch([f"route replace {n}.0/24 nhid {i + 1} proto 250" for i, n in enumerate(nets)])
            _batch(["nexthop flush proto 250"])
            rows.append([size, via, hops, nhid, hops + nhid])
    finally:
        subprocess.run(["ip", "link", "del", "vxbench"], check=False)
    return rows


def work(request: dict[str, Any]) -> dict[str, Any]:
    import machine
    import vxlan

    # The boot unit and sysctl files go under a throwaway root; only the kernel is real.
    plane = vxlan.VxlanPlane(machine.Machine(request["root"]))
    reps = request["reps"]
    biggest = max(request["sizes"])
    bags = _databags(biggest + 1)
    cases = []
    for size in request["sizes"]:
        fans, plan_s = _plan(bags[:size])
        plan_s = median([plan_s] + [_plan(bags[:size])[1] for _ in range(reps - 1)])
        cases.append(_case(f"{size} from nothing", plane, None, fans, reps=reps, plan_s=plan_s))
    base, plan_s = _plan(bags[:biggest])
    joined, plan_j = _plan(bags)
    cases.append(_case("no-op", plane, base, base, reps=reps, plan_s=plan_s))
    cases.append(_case("1 joins", plane, base, joined, reps=reps, plan_s=plan_j))
    cases.append(_case("1 leaves", plane, joined, base, reps=reps, plan_s=plan_s))
    cases.append(_peer_case("1 joins, peer hook", plane, base, joined, reps=reps, plan_s=plan_j))
    cases.append(_peer_case("1 leaves, peer hook", plane, joined, base, reps=reps, plan_s=plan_s))
    naive = [_naive(plane, _plan(bags[:size])[0]) for size in request["naive"]]
    _reset(plane)
    forms = _route_forms(request["sizes"])
    return {"cases": cases, "naive": naive, "reps": reps, "forms": forms}


def _token() -> str:
    import secrets

    return secrets.token_hex(2)


if __name__ == "__main__":
    common.main(run, work)
