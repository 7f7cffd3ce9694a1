"""Failure suite on a real kernel: hostile peers, failures mid-apply, a full disk, reboot, removal.

Machines and containers are network namespaces (tests/e2e/lab.py) and each machine's hooks
run the real charm (tests/e2e/model.py), as in test_vxlan_e2e.py. On top of that, every
machine's `ip`, `bridge`, `nft` and `sysctl` go through tests/e2e/recording_tool.py, which
records what the charm sent (so "no command is built from hostile data" is checked on the
real `ip -batch` input) and can make a call fail, half way through its batch if asked.
The full disk is a real full tmpfs on the machine's /etc, mounted in a private mount
namespace that the machine's hooks enter, so nothing outside the test sees it.
Tests run in file order on one lab; the last one builds its own lab with an LXD daemon.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ADDRESSES, MAPPING, FanLab, segment_of
from tests.e2e.lab import Container, Lab, LabMachine, run
from tests.e2e.model import APP, REPO, Model, Unit
from tests.unit.test_failures_relations import HOSTILE_PEERS

RECORDER = Path(__file__).resolve().with_name("recording_tool.py")
TOOLS = ("ip", "bridge", "nft", "sysctl")
SECOND = "10.123.0.0/16=251.0.0.0/8"
READ_ONLY = (("ip", "-j"), ("bridge", "-j"), ("nft", "list"), ("sysctl", "-n"))
PHANTOM = {"underlay-addresses": json.dumps(["10.123.9.9"]), "machine": '"99"', "fan-kernel": "false"}


class HostileModel(Model):
    """The Juju stand-in, with peer databags written by units that run no hooks of their own.

    `hostile` maps unit ids to databags every real unit sees in `fan-peers`; keep it empty
    while units are added (Model.add_unit would run their peer hooks).
    """

    def __init__(self, lab: Lab, config: dict[str, Any]):
        super().__init__(lab, config)
        self.hostile: dict[int, dict[str, str]] = {}

    def others(self, unit: Unit) -> list[Unit]:
        fakes = [Unit(i, unit.machine, data) for i, data in self.hostile.items()]
        return super().others(unit) + fakes


@dataclasses.dataclass
class Recorder:
    """One machine's recorded tool calls and failure rules (see recording_tool.py)."""

    bin_dir: Path
    log: Path
    rules: Path

    def mark(self) -> int:
        return len(self.calls())

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()][since:]

    def fail(self, *rules: dict[str, Any]) -> None:
        self.rules.write_text(json.dumps(list(rules)))

    def heal(self) -> None:
        self.rules.unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        return {"RECORD_LOG": str(self.log), "RECORD_FAIL": str(self.rules)}


def record_tools(lab: Lab, machine: LabMachine) -> Recorder:
    """Put the recording tool first on the machine's PATH (its hooks and the boot path)."""
    bin_dir = lab.workdir / f"tools-{machine.name}"
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(RECORDER)
    recorder = Recorder(
        bin_dir, lab.workdir / f"tools-{machine.name}.jsonl", lab.workdir / f"fail-{machine.name}"
    )
    fakebin = lab.workdir / "fakebin"  # the Juju stand-in's systemctl
    machine.env.update(
        PATH=f"{bin_dir}{os.pathsep}{fakebin}{os.pathsep}{os.environ['PATH']}", **recorder.env()
    )
    return recorder


@dataclasses.dataclass
class World:
    fan: FanLab
    model: HostileModel
    recorders: dict[str, Recorder]

    def unit(self, name: str) -> Unit:
        return next(u for u in self.model.units.values() if u.machine.name == name)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with Lab() as lab:
        machines = [lab.add_machine(name, address) for name, address in ADDRESSES.items()]
        model = HostileModel(lab, {"fan-config": MAPPING})
        recorders = {m.name: record_tools(lab, m) for m in machines}
        model.deploy(machines)
        built = World(FanLab(lab, model), model, recorders)
        for machine in machines:
            built.fan.add_containers(machine, count=1)
        yield built


@pytest.fixture(autouse=True)
def _healthy_afterwards(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test of the shared lab hands the next one a healthy model."""
    yield
    if "world" in request.fixturenames:
        model = request.getfixturevalue("world").model
        assert all(u.status[0] == "active" for u in model.units.values()), statuses(model)


def statuses(model: Model) -> dict[str, tuple[str, str]]:
    return {u.name: u.status for u in model.units.values()}


def ping(src: Container | LabMachine, dst: str, *args: str) -> bool:
    probe = src.exec("ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", *args, dst, check=False)
    return probe.returncode == 0


def all_containers_reach_each_other(world: World) -> list[tuple[str, str]]:
    """The pairs of containers on different machines that cannot reach each other."""
    pairs = [(s, d) for m1, s in world.fan.containers() for m2, d in world.fan.containers() if m1 is not m2]
    return [(s.name, str(d.address.ip)) for s, d in pairs if not ping(s, str(d.address.ip))]


def kernel_peers(machine: LabMachine) -> dict[str, set[str]]:
    """What the kernel holds about peers: routes (proto 250), permanent neighbours, FDB targets."""
    routes = json.loads(machine.exec("ip", "-j", "-4", "route", "show", "proto", "250").stdout or "[]")
    neigh = json.loads(machine.exec("ip", "-j", "-4", "neigh", "show", "nud", "permanent").stdout or "[]")
    fdb = json.loads(machine.exec("bridge", "-j", "fdb", "show").stdout or "[]")
    return {
        "routes": {r["dst"] for r in routes},
        "neighbours": {n["dst"] for n in neigh if n.get("dev", "").startswith("vx-")},
        "fdb": {f["dst"] for f in fdb if "dst" in f},
    }


def expected_peers(*underlays: str) -> dict[str, set[str]]:
    fan = ipaddress.IPv4Network("250.0.0.0/8")
    segments = [
        ipaddress.IPv4Network((int(fan.network_address) | (int(ipaddress.IPv4Address(a)) & 0xFFFF) << 8, 24))
        for a in underlays
    ]
    return {
        "routes": {str(s) for s in segments},
        "neighbours": {str(s.network_address + 1) for s in segments},
        "fdb": set(underlays),
    }


def batch_lines(calls: list[dict[str, Any]]) -> list[str]:
    return [
        line
        for c in calls
        if c["argv"][:2] in (["ip", "-batch"], ["bridge", "-batch"])
        for line in (c["stdin"] or "").splitlines()
    ]


# -- hostile relation data -------------------------------------------------------------------

# Claims inside the lab's underlay, on top of the unit suite's table (tests/unit).
LAB_HOSTILE: dict[int, dict[str, str]] = {
    200: {"underlay-addresses": json.dumps(["10.123.0.0"]), "machine": '"70"'},  # network address
    201: {"underlay-addresses": json.dumps(["10.123.255.255"]), "machine": '"70"'},  # broadcast
    202: {"underlay-addresses": json.dumps(["10.123.66.66"]), "machine": '"71"'},  # one address,
    203: {"underlay-addresses": json.dumps(["10.123.66.66"]), "machine": '"72"'},  # two machines
    204: {"underlay-addresses": json.dumps(["10.123.9.9; ip link del eth0"]), "machine": '"73"'},
    205: {
        "underlay-addresses": json.dumps(["10.123.9.9/16", " 10.123.9.9", "10.123.09.9"]),
        "machine": '"74"',
    },
    206: {"underlay-addresses": json.dumps([175835401]), "machine": '"75"'},  # 10.123.9.9 as a number
    207: {"underlay-addresses": "[" * 50_000, "machine": '"76"'},
    208: {"underlay-addresses": json.dumps(["10.123.9.9\n"] + ["10.123.9.8"] * 40), "machine": '"77"'},
}


def test_hostile_peers_reach_no_command_and_no_kernel_entry(world: World):
    model = world.model
    hostile = {100 + i: h.data for i, h in enumerate(HOSTILE_PEERS)} | LAB_HOSTILE
    warns = {100 + i for i, h in enumerate(HOSTILE_PEERS) if h.warns} | set(LAB_HOSTILE)
    marks = {name: r.mark() for name, r in world.recorders.items()}
    model.hostile = {**hostile, 99: PHANTOM}  # the phantom is valid: proof the checks see routes
    try:
        for unit in list(model.units.values()):
            model.hook(unit, "peer_changed", remote_unit=100)
            assert unit.status[0] == "active" and unit.status[1].endswith(", 3 peers)"), unit.status
            unlogged = [
                i for i in warns if not any(f"{APP}/{i}" in line for line in unit.logs if "WARNING" in line)
            ]
            assert unlogged == [], f"{unit.name} did not log ignoring {unlogged}"
            assert not any("Traceback" in line for line in unit.logs)

        valid = {m.address.ip.exploded for m in world.fan.lab.machines.values()} | {"10.123.9.9"}
        for name, machine in world.fan.lab.machines.items():
            others = sorted(valid - {machine.address.ip.exploded})
            assert kernel_peers(machine) == expected_peers(*others), name
            lines = batch_lines(world.recorders[name].calls(marks[name]))
            assert lines, f"{name} sent no batch for the phantom peer: the check below checks nothing"
            allowed = _addresses_of(valid | {machine.address.ip.exploded})
            for line in lines:
                assert re.fullmatch(r"[a-z0-9 ./:_-]+", line), f"{name} sent {line!r}"
                assert set(re.findall(r"\d+\.\d+\.\d+\.\d+(?:/\d+)?", line)) <= allowed, (
                    f"{name} sent {line!r}"
                )
            sent = json.dumps(world.recorders[name].calls(marks[name]))
            for marker in (
                "10.123.66.66",
                "10.123.0.0",
                "10.123.255.255",
                "10.123.9.8",
                "del eth0",
                "$(",
                "`",
            ):
                assert marker not in sent, f"{name} sent {marker!r}"
        assert all_containers_reach_each_other(world) == []
    finally:
        model.hostile = {}
        model.update_status()
    for name, machine in world.fan.lab.machines.items():
        others = sorted(
            {m.address.ip.exploded for m in world.fan.lab.machines.values()} - {machine.address.ip.exploded}
        )
        assert kernel_peers(machine) == expected_peers(*others), name


def _addresses_of(underlays: set[str]) -> set[str]:
    """Every address and network a batch may name for these hosts' fans."""
    allowed = set(underlays) | {"250.0.0.0/8"}
    for address in underlays:
        _, _, third, fourth = address.split(".")
        allowed |= {f"250.{third}.{fourth}.1", f"250.{third}.{fourth}.0/24", f"250.{third}.{fourth}.1/24"}
    return allowed


# -- failures mid-apply ----------------------------------------------------------------------


def test_a_batch_failing_halfway_is_reported_and_the_next_hook_converges(world: World):
    model, h2, recorder = world.model, world.fan.machine("h2"), world.recorders["h2"]
    unit = world.unit("h2")
    model.config["fan-config"] = f"{MAPPING} {SECOND}"
    recorder.fail({"prefix": "ip -batch", "contains": "link add", "times": 1, "half": True})
    try:
        model.hook(unit, "config_changed")
    finally:
        recorder.heal()

    assert unit.status[0] == "blocked"
    assert unit.status[1].startswith(
        "could not apply the fan: `ip -batch -` failed: exit 1: ip: injected failure"
    )
    links = {link["ifname"] for link in json.loads(h2.exec("ip", "-j", "link").stdout)}
    assert "fan-251" in links and "vx-251" not in links, "the batch was meant to stop half way"
    applied = json.loads((h2.root / "var/lib/fan-networking/applied.json").read_text())
    assert [f["overlay"] for f in applied["fans"]] == ["250.0.0.0/8"], (
        "only what was fully applied is recorded"
    )
    # The fan that ran keeps running while the new one is half made.
    assert all_containers_reach_each_other(world) == []

    for other in model.others(unit):
        model.hook(other, "config_changed")
    model.settle()  # the next hooks, the failure gone

    assert unit.status[0] == "active" and "on fan-251" in unit.status[1], unit.status
    gateways = {m: segment_of(m, SECOND).network_address + 1 for m in (h2, world.fan.machine("h1"))}
    assert ping(h2, str(gateways[world.fan.machine("h1")]), "-I", str(gateways[h2])), "fan-251 does not carry"
    assert all_containers_reach_each_other(world) == []
    model.set_config(fan_config=MAPPING)
    assert "fan-251" not in h2.exec("ip", "-br", "link").stdout


def test_bridge_failing_adds_no_half_peer_and_the_next_hook_converges(world: World):
    model, h3, recorder = world.model, world.fan.machine("h3"), world.recorders["h3"]
    unit = world.unit("h3")
    real_peers = sorted(
        {m.address.ip.exploded for m in world.fan.lab.machines.values()} - {h3.address.ip.exploded}
    )
    model.hostile = {99: PHANTOM}  # a new peer: an FDB entry, a neighbour and a route to add
    try:
        recorder.fail({"prefix": "bridge -batch", "times": 10})  # until healed: retries fail too
        try:
            model.hook(unit, "peer_changed", remote_unit=99)
        finally:
            recorder.heal()
        assert unit.status == (
            "blocked",
            "could not apply the fan: `bridge -batch -` failed: exit 1: bridge: injected failure after 0 lines "
            "(retried on every hook)",
        )
        assert kernel_peers(h3) == expected_peers(*real_peers), "no route without its tunnel endpoint"
        assert all_containers_reach_each_other(world) == []

        model.hook(unit, "update_status")

        assert unit.status[0] == "active" and unit.status[1].endswith(", 3 peers)")
        assert kernel_peers(h3) == expected_peers(*real_peers, "10.123.9.9")
    finally:
        model.hostile = {}
        model.update_status()
    assert kernel_peers(h3) == expected_peers(*real_peers)


@contextlib.contextmanager
def full_tmpfs(directory: Path, size: str = "1m") -> Iterator[list[str]]:
    """A tmpfs on `directory`, seen only in a private mount namespace; yields the nsenter prefix.

    The namespace is held by a sleeping process and goes away with it, mount and all.
    """
    directory.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            "unshare", "-m", "--propagation", "private", "sh", "-c",
            f'mount -t tmpfs -o size={size},mode=755 fan-e2e-full "{directory}" && echo ready && exec sleep 900',
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_full_disk_is_reported_and_freeing_it_converges(world: World):
    lab, model = world.fan.lab, world.model
    h4 = lab.add_machine("h4", "10.123.4.40")
    record_tools(lab, h4)
    etc = h4.root / "etc"
    try:
        with full_tmpfs(etc) as enter:
            h4.hook_prefix = enter
            try:
                fill = run([*enter, "sh", "-c", f'cat /dev/zero > "{etc}/filler"'], check=False)
                assert "No space left on device" in fill.stderr
                unit = model.add_unit(h4)

                status, message = unit.status
                assert status == "blocked" and message.startswith("could not apply the fan: "), unit.status
                assert "No space left on device" in message and message.endswith("(retried on every hook)")
                assert all(u.status[0] == "active" for u in model.others(unit))

                run([*enter, "rm", f"{etc}/filler"])
                model.hook(unit, "update_status")
                model.settle()

                assert unit.status[0] == "active", unit.status
                unit_file = run([*enter, "cat", f"{etc}/systemd/system/fan-networking.service"]).stdout
                assert "ExecStart=" in unit_file and unit_file.endswith("\n"), "the boot unit is whole"
                sysctl_files = run([*enter, "sh", "-c", f'cat "{etc}"/sysctl.d/*']).stdout
                assert h4.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
                (container,) = world.fan.add_containers(h4, count=1)
                assert ping(world.fan.machine("h1").containers[0], str(container.address.ip))
            finally:
                for leftover in [u for u in model.units.values() if u.machine is h4]:
                    model.remove_unit(leftover)
            left = run([*enter, "find", str(etc), "-type", "f"]).stdout.split()
            assert left == [], f"removal left {left}"
    finally:
        h4.hook_prefix = []
        lab.remove_machine(h4)
    # charmlibs-sysctl turns forwarding on before it writes its file, so a full disk left
    # the file empty; the next hook must write it, or the setting is lost at reboot.
    assert "net.ipv4.ip_forward=1" in sysctl_files, sysctl_files


# -- reboot ----------------------------------------------------------------------------------


def kernel_fan(machine: LabMachine) -> dict[str, Any]:
    links = json.loads(machine.exec("ip", "-j", "-d", "addr", "show").stdout)
    return {
        "links": sorted(
            (
                link["ifname"],
                link.get("mtu"),
                link.get("ifalias"),
                tuple(sorted(a["local"] for a in link["addr_info"] if a["family"] == "inet")),
            )
            for link in links
            if link["ifname"].startswith(("fan-", "vx-"))
        ),
        "peers": kernel_peers(machine),
        "nat": machine.exec("nft", "list", "table", "ip", "fan_networking", check=False).stdout,
    }


def test_the_boot_path_alone_brings_traffic_back_and_again_changes_nothing(world: World):
    lab, h1, h2 = world.fan.lab, world.fan.machine("h1"), world.fan.machine("h2")
    recorder = world.recorders["h2"]
    before = kernel_fan(h2)
    assert before["links"] and before["nat"]

    lab.wipe_machine(h2)
    assert kernel_fan(h2)["links"] == []
    src = REPO / "src"

    def boot() -> subprocess.CompletedProcess[str]:
        env = [f"{k}={v}" for k, v in {**recorder.env(), "PATH": h2.env["PATH"], "PYTHONPATH": src}.items()]
        return h2.exec("env", *env, sys.executable, str(src / "boot.py"), "--root", str(h2.root))

    first = boot()
    assert "fan up on fan-250" in first.stderr
    assert kernel_fan(h2) == before
    (container,) = world.fan.add_containers(h2, count=1)
    assert ping(h1.containers[0], str(container.address.ip)), "the boot path alone carries traffic"

    mark = recorder.mark()
    again = boot()

    assert "fan up on fan-250 (0 changes)" in again.stderr
    writes = [c["argv"] for c in recorder.calls(mark) if tuple(c["argv"][:2]) not in READ_ONLY]
    assert writes == [], "a second boot run must only read"
    assert kernel_fan(h2) == before
    world.model.update_status()
    unit = world.unit("h2")
    assert unit.status[0] == "active"
    assert not any(line.startswith("INFO applied") for line in unit.logs), unit.logs


# -- removal: everything as it was -------------------------------------------------------------

BASE_DIRS = ("etc/systemd/system/multi-user.target.wants", "etc/sysctl.d", "etc/network", "var/lib", "run")


def machine_snapshot(machine: LabMachine) -> dict[str, Any]:
    """Links, addresses, routes, neighbours, FDB, the nft ruleset and the machine's files.

    Taken once IPv6 has settled (no tentative address), so the kernel's own link-local
    addresses and routes are there both times.
    """
    for _ in range(100):
        if not machine.exec("ip", "-6", "addr", "show", "tentative").stdout.strip():
            break
        time.sleep(0.1)

    def j(*argv: str) -> Any:
        return json.loads(machine.exec(*argv).stdout or "[]")

    links = sorted(
        (
            link["ifname"],
            link.get("mtu"),
            link.get("master"),
            link.get("ifalias"),
            link.get("address"),
            link.get("linkinfo", {}).get("info_kind"),
            tuple(sorted(link.get("flags", []))),
        )
        for link in j("ip", "-j", "-d", "link", "show")
    )
    addresses = sorted(
        (link["ifname"], a["family"], a["local"], a["prefixlen"])
        for link in j("ip", "-j", "addr", "show")
        for a in link.get("addr_info", [])
    )
    routes = sorted(
        json.dumps(r, sort_keys=True)
        for f in ("-4", "-6")
        for r in j("ip", "-j", f, "route", "show", "table", "all")
    )
    neighbours = sorted(
        json.dumps(n, sort_keys=True) for n in j("ip", "-j", "neigh", "show", "nud", "permanent")
    )
    fdb = sorted(json.dumps(f, sort_keys=True) for f in j("bridge", "-j", "fdb", "show"))
    files = {
        str(p.relative_to(machine.root)): (p.read_text() if p.is_file() else None)
        for p in sorted(machine.root.rglob("*"))
        if not str(p.relative_to(machine.root)).startswith("var/lib/juju") and p.name != "fake-calls.jsonl"
    }
    return {
        "links": links,
        "addresses": addresses,
        "routes": routes,
        "neighbours": neighbours,
        "fdb": fdb,
        # LXD keeps its own (empty) table once it has had a network: LXD's state, not the charm's.
        "nft": machine.exec("nft", "list", "ruleset").stdout.replace("table inet lxd {\n}\n", ""),
        "files": files,
    }


def lxd_snapshot(daemon: Any) -> dict[str, Any]:
    networks = daemon.client.call("GET", "/1.0/networks?recursion=1")
    profiles = daemon.client.call("GET", "/1.0/profiles?recursion=1")
    return {
        "networks": sorted(
            json.dumps(
                {k: n.get(k) for k in ("name", "managed", "type", "config", "description")}, sort_keys=True
            )
            for n in networks
        ),
        "profiles": sorted(
            json.dumps({k: v for k, v in p.items() if k != "used_by"}, sort_keys=True) for p in profiles
        ),
    }


def test_remove_leaves_every_machine_as_it_was_lxd_included():
    if shutil.which("lxd") is None:
        pytest.skip("needs Debian's lxd (bash .ci/setup installs it)")
    from tests.lxd.lxd_harness import daemon_on

    with Lab() as lab:
        h1, h2 = lab.add_machine("h1", ADDRESSES["h1"]), lab.add_machine("h2", ADDRESSES["h2"])
        with daemon_on(h1) as daemon:
            for machine in (h1, h2):
                for directory in BASE_DIRS:  # what any machine has before the charm comes
                    (machine.root / directory).mkdir(parents=True)
            before = {m.name: machine_snapshot(m) for m in (h1, h2)}
            lxd_before = lxd_snapshot(daemon)

            model = Model(lab, {"fan-config": MAPPING})
            model.deploy([h1, h2])
            fan = FanLab(lab, model)
            fan.add_containers(h1, count=1)
            fan.add_containers(h2, count=1)
            assert daemon.get("/1.0/networks/fan-250")["managed"] is True
            assert ping(h1.containers[0], str(h2.containers[0].address.ip))
            # Exercise: a second fan, another host-reserve, direct routing, and back.
            model.set_config(fan_config=f"{MAPPING} {SECOND}", host_reserve=3)
            model.set_config(direct_routing=True)
            assert all(u.status[0] == "active" for u in model.units.values()), statuses(model)
            assert ping(h1.containers[0], str(h2.containers[0].address.ip))
            model.set_config(fan_config=MAPPING, host_reserve=1, direct_routing=False)
            assert ping(h1.containers[0], str(h2.containers[0].address.ip))
            for machine in (h1, h2):  # the test's containers are not the charm's to remove
                for container in machine.containers:
                    machine.exec("ip", "link", "del", container.host_port)

            for unit in list(model.units.values()):
                model.remove_unit(unit)

            for machine in (h1, h2):
                after = machine_snapshot(machine)
                for key, value in before[machine.name].items():
                    assert after[key] == value, f"{machine.name}: {key} differs after remove"
            assert lxd_snapshot(daemon) == lxd_before
