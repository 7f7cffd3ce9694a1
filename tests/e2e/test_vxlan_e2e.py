"""The vxlan data plane end to end, judged the way a user would: containers talking.

Machines and containers are network namespaces (tests/e2e/lab.py); each machine's hooks
run the real charm through ops.testing inside its namespace (tests/e2e/model.py), with
the real `ip`, `bridge`, `nft` and `sysctl`. Only `systemctl` is faked: no systemd here.
Tests run in file order on one shared lab and leave it as they found it, except where a
test says otherwise.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.e2e.conftest import ADDRESSES, MAPPING, FanLab, segment_of, steady_ping
from tests.e2e.lab import Container, LabMachine, frag_creates
from tests.e2e.model import REPO, Model

FAN_MTU = 1450
T = TypeVar("T")


def ping(src: Container, dst: str, *args: str, count: int = 2) -> subprocess.CompletedProcess[str]:
    return src.exec("ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", *args, dst, check=False)


def routes(machine: LabMachine) -> list[dict[str, object]]:
    return json.loads(machine.exec("ip", "-j", "-4", "route", "show", "proto", "250").stdout or "[]")


def kernel_entries(machine: LabMachine) -> str:
    """Everything the kernel holds about peers on this machine, as text to search in."""
    return "\n".join(
        machine.exec(*argv, check=False).stdout
        for argv in (
            ("ip", "-4", "route", "show", "proto", "250"),
            ("ip", "-4", "neigh", "show", "nud", "permanent"),
            ("bridge", "fdb", "show"),
        )
    )


def statuses(model: Model) -> dict[str, tuple[str, str]]:
    return {u.name: u.status for u in model.units.values()}


def in_parallel(jobs: list[Callable[[], T]]) -> list[T]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda job: job(), jobs))


# -- the fan works -------------------------------------------------------------------------


def test_units_are_active_with_their_segments(fan_lab: FanLab):
    for unit in fan_lab.model.units.values():
        segment = segment_of(unit.machine)
        assert unit.status == ("active", f"fan {segment} on fan-250 (vxlan, mtu {FAN_MTU}, 2 peers)")
    assert json.loads(fan_lab.model.app_data["dataplane"]) == "vxlan"


def test_every_container_reaches_every_container_on_other_machines(fan_lab: FanLab):
    pairs = [
        (src, dst) for m1, src in fan_lab.containers() for m2, dst in fan_lab.containers() if m1 is not m2
    ]
    assert len(pairs) == 24  # 6 containers, 4 remote peers each
    results = in_parallel([lambda s=s, d=d: ping(s, str(d.address.ip)) for s, d in pairs])
    failed = [
        (s.name, str(d.address.ip)) for (s, d), r in zip(pairs, results, strict=False) if r.returncode != 0
    ]  # type: ignore[union-attr]
    assert failed == []


def test_receiver_sees_the_senders_overlay_address_and_egress_is_masqueraded(fan_lab: FanLab):
    h1, h2 = fan_lab.machine("h1"), fan_lab.machine("h2")
    sender, receiver = h1.containers[0], h2.containers[0]
    server = (
        "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        "s.bind(('0.0.0.0', 9000)); s.listen(); c, a = s.accept(); print(a[0], flush=True); c.close()"
    )
    client = "import socket, sys; socket.create_connection((sys.argv[1], 9000), timeout=5).close()"

    def source_seen(listener_ns: str, target: str) -> str:
        proc = fan_lab.lab.background(listener_ns, "python3", "-c", server)
        time.sleep(0.5)
        sender.exec("python3", "-c", client, target)
        out, _ = proc.communicate(timeout=10)
        return out.strip()

    # Inside the overlay: no NAT, the receiver sees the container's own address.
    assert source_seen(receiver.name, str(receiver.address.ip)) == str(sender.address.ip)
    # Leaving the overlay (to a host's underlay address): masqueraded behind h1's address.
    assert source_seen(h2.ns, str(h2.address.ip)) == str(h1.address.ip)


def test_largest_df_packet_passes_without_fragments(fan_lab: FanLab):
    src, dst = fan_lab.machine("h1").containers[0], fan_lab.machine("h3").containers[1]
    namespaces = fan_lab.lab.namespaces()
    before = frag_creates(namespaces)

    fits = ping(src, str(dst.address.ip), "-M", "do", "-s", str(FAN_MTU - 28), count=3)
    too_big = ping(src, str(dst.address.ip), "-M", "do", "-s", str(FAN_MTU - 27), count=1)

    assert fits.returncode == 0, fits.stdout + fits.stderr
    assert "3 received" in fits.stdout
    assert too_big.returncode != 0
    assert f"mtu={FAN_MTU}" in too_big.stdout + too_big.stderr
    assert frag_creates(namespaces) == before


def test_check_connectivity_reports_every_peer_reachable(fan_lab: FanLab):
    unit = fan_lab.model.units[0]
    results, failure = fan_lab.model.run_action(unit, "check-connectivity")
    assert failure is None
    rows = json.loads(results["peers"])
    assert sorted(r["unit"] for r in rows) == ["fan-networking/1", "fan-networking/2"]
    assert all(r["reachable"] and r["loss"] == "0%" for r in rows)
    assert "fan-networking/2" in results["table"]


def test_check_connectivity_reports_a_cut_off_peer(fan_lab: FanLab):
    h3 = fan_lab.machine("h3")
    fan_lab.lab.cut_off(h3)
    try:
        results, failure = fan_lab.model.run_action(fan_lab.model.units[0], "check-connectivity", count=2)
    finally:
        fan_lab.lab.cut_off(h3, cut=False)
    assert failure is not None
    assert "unreachable over the overlay: fan-networking/2" in failure
    rows = {r["unit"]: r for r in json.loads(results["peers"])}
    assert rows["fan-networking/2"]["reachable"] is False
    assert rows["fan-networking/1"]["reachable"] is True


def test_show_reports_what_the_kernel_holds(fan_lab: FanLab):
    results, failure = fan_lab.model.run_action(fan_lab.model.units[1], "show")
    assert failure is None
    kernel = json.loads(results["kernel"])
    assert kernel["links"]["fan-250"]["addresses"] == [
        f"{segment_of(fan_lab.machine('h2')).network_address + 1}/24"
    ]
    assert set(kernel["routes"]) == {str(segment_of(fan_lab.machine(n))) for n in ("h1", "h3")}
    assert kernel["nat"] == "installed"


# -- changes lose nothing ------------------------------------------------------------------


def test_peer_join_and_leave_lose_no_packets_and_leave_no_entries(fan_lab: FanLab):
    h1, h2 = fan_lab.machine("h1"), fan_lab.machine("h2")
    h4 = fan_lab.lab.add_machine("h4", "10.123.4.40")
    try:
        with steady_ping(fan_lab, h1.containers[0], h2.containers[0]) as joined:
            unit = fan_lab.model.add_unit(h4)
        assert unit.status[0] == "active"
        assert all(u.status[1].endswith("3 peers)") for u in fan_lab.model.units.values())
        (c4,) = fan_lab.add_containers(h4, count=1)
        assert ping(h1.containers[1], str(c4.address.ip)).returncode == 0

        with steady_ping(fan_lab, h1.containers[0], h2.containers[0]) as left:
            fan_lab.model.remove_unit(unit)
    finally:
        fan_lab.lab.remove_machine(h4)

    assert joined["sent"] > 200 and joined["lost"] == 0, joined
    assert left["sent"] > 200 and left["lost"] == 0, left
    for name in ("h1", "h2", "h3"):
        held = kernel_entries(fan_lab.machine(name))
        assert "250.4.40." not in held and "10.123.4.40" not in held and "02:fa:0a:7b:04:28" not in held
    assert all(u.status[1].endswith("2 peers)") for u in fan_lab.model.units.values())


def test_a_second_mapping_loses_no_packets_on_the_first(fan_lab: FanLab):
    h1, h3 = fan_lab.machine("h1"), fan_lab.machine("h3")
    second = f"{MAPPING} 10.123.0.0/16=251.0.0.0/8"
    with steady_ping(fan_lab, h1.containers[0], h3.containers[0]) as flow:
        fan_lab.model.set_config(fan_config=second)
    assert flow["sent"] > 200 and flow["lost"] == 0, flow
    for unit in fan_lab.model.units.values():
        assert unit.status[0] == "active"
        assert unit.status[1].startswith(f"fans {segment_of(unit.machine)} on fan-250, ")
        assert "on fan-251" in unit.status[1]
    # The new fan carries traffic too: host gateway to host gateway over fan-251.
    gw1, gw3 = (segment_of(m, "10.123.0.0/16=251.0.0.0/8").network_address + 1 for m in (h1, h3))
    probe = h1.exec("ping", "-n", "-c", "2", "-W", "1", "-I", str(gw1), str(gw3), check=False)
    assert probe.returncode == 0, probe.stdout

    fan_lab.model.set_config(fan_config=MAPPING)
    assert "fan-251" not in h1.exec("ip", "-br", "link").stdout
    assert "251." not in kernel_entries(h1)


def test_invalid_config_blocks_and_the_running_fan_keeps_carrying(fan_lab: FanLab):
    h1, h2 = fan_lab.machine("h1"), fan_lab.machine("h2")
    with steady_ping(fan_lab, h1.containers[1], h2.containers[1]) as flow:
        fan_lab.model.set_config(fan_config=f"{MAPPING} foobar")
        blocked = statuses(fan_lab.model)
    fan_lab.model.set_config(fan_config=MAPPING)

    assert all(s[0] == "blocked" and "foobar" in s[1] for s in blocked.values()), blocked
    assert flow["lost"] == 0, flow
    assert all(s[0] == "active" for s in statuses(fan_lab.model).values())


def test_direct_routing_skips_encapsulation_between_same_subnet_peers(fan_lab: FanLab):
    h1, h2 = fan_lab.machine("h1"), fan_lab.machine("h2")
    with steady_ping(fan_lab, h1.containers[0], h2.containers[0]) as on:
        fan_lab.model.set_config(direct_routing=True)
    try:
        held = {r["dst"]: (r["gateway"], r["dev"]) for r in routes(h1)}
        assert held[str(segment_of(h2))] == (ADDRESSES["h2"], "eth0")
        assert "02:fa:" not in h1.exec("ip", "-4", "neigh", "show", "nud", "permanent").stdout
        assert ping(h1.containers[1], str(fan_lab.machine("h3").containers[1].address.ip)).returncode == 0
    finally:
        with steady_ping(fan_lab, h1.containers[0], h2.containers[0]) as off:
            fan_lab.model.set_config(direct_routing=False)
    assert on["lost"] == 0 and off["lost"] == 0, (on, off)
    assert {r["dev"] for r in routes(h1)} == {"vx-250"}


# -- reboot and removal (these change the lab for good, so they run last) ------------------


def test_after_a_reboot_the_boot_path_brings_the_same_fan_back(fan_lab: FanLab):
    h1, h2 = fan_lab.machine("h1"), fan_lab.machine("h2")

    def fan_addresses() -> list[str]:
        return h2.exec("ip", "-4", "-br", "addr", "show", "fan-250").stdout.split()[2:]

    before = fan_addresses()

    fan_lab.lab.wipe_machine(h2)
    assert "fan-250" not in h2.exec("ip", "-br", "link").stdout
    src = REPO / "src"
    boot = h2.exec("env", f"PYTHONPATH={src}", sys.executable, str(src / "boot.py"), "--root", str(h2.root))

    assert "fan up on fan-250" in boot.stderr
    assert fan_addresses() == before == [f"{segment_of(h2).network_address + 1}/24"]
    assert {r["dst"] for r in routes(h2)} == {str(segment_of(fan_lab.machine(n))) for n in ("h1", "h3")}
    assert "fan_networking" in h2.exec("nft", "list", "tables").stdout
    (container,) = fan_lab.add_containers(h2, count=1)
    assert ping(h1.containers[0], str(container.address.ip)).returncode == 0
    # The charm's next hook finds nothing to change.
    fan_lab.model.update_status()
    assert statuses(fan_lab.model)["fan-networking/1"][0] == "active"


def test_remove_leaves_nothing_behind(fan_lab: FanLab):
    h3 = fan_lab.machine("h3")
    for container in list(h3.containers):
        h3.exec("ip", "link", "del", container.host_port)
    unit = next(u for u in fan_lab.model.units.values() if u.machine is h3)

    fan_lab.model.remove_unit(unit)

    links = {link["ifname"] for link in json.loads(h3.exec("ip", "-j", "link").stdout)}
    assert links == {"lo", "eth0"}
    assert (
        h3.exec("ip", "-4", "route").stdout.strip()
        == "10.123.0.0/16 dev eth0 proto kernel scope link src 10.123.3.30"
    )
    assert h3.exec("ip", "-4", "neigh", "show", "nud", "permanent").stdout.strip() == ""
    assert h3.exec("nft", "list", "ruleset").stdout.strip() == ""
    leftovers = sorted(
        str(p.relative_to(h3.root))
        for p in h3.root.rglob("*")
        if p.is_file() and p.name != "fake-calls.jsonl"
    )
    assert leftovers == []
    for name in ("h1", "h2"):
        held = kernel_entries(fan_lab.machine(name))
        assert "250.3.30." not in held and "10.123.3.30" not in held
    assert all(u.status[1].endswith("1 peer)") for u in fan_lab.model.units.values())


@pytest.fixture(autouse=True)
def _no_blocked_units_left(fan_lab: FanLab) -> Iterator[None]:
    """Each test hands the next one a healthy model."""
    yield
    assert all(u.status[0] == "active" for u in fan_lab.model.units.values()), statuses(fan_lab.model)
