"""LxdFan against the real Debian LXD daemon (see conftest.py for how it runs)."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
import secrets
import signal
from pathlib import Path
from typing import Any

import pytest

import fan as fanmath
from dataplane import ApplyError
from lxd import RECORD_FILE, LxdFan
from machine import STATE_DIR, Machine
from plan import LocalFan, PlanError
from tests.lxd.lxd_harness import Daemon, NetnsMachine

pytestmark = pytest.mark.root

_overlays = itertools.count(1)


def new_fan(**changes: Any) -> LocalFan:
    """A fan of its own: overlay 250.<n>.0.0/16, so bridge fan-250-<n>, segment 250.<n>.6.0/24."""
    mapping = fanmath.parse_fan_config(f"10.4.0.0/24=250.{next(_overlays)}.0.0/16")[0]
    local = LocalFan(mapping, ipaddress.IPv4Interface("10.4.0.6/24"), 1450, "ul0")
    return dataclasses.replace(local, **changes)


def expected_config(f: LocalFan) -> dict[str, str]:
    first, last = f.dhcp_range
    return {
        "ipv4.address": f"{f.gateway}/{f.segment.prefixlen}",
        "ipv4.nat": "false",
        "ipv4.dhcp": "true" if f.dhcp else "false",
        "ipv4.dhcp.ranges": f"{first}-{last}",
        "ipv6.address": "none",
        "bridge.mtu": str(f.mtu),
    }


def writes(log: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [request for request in log if request[0] != "GET"]


def link(daemon: Daemon, name: str) -> dict[str, Any]:
    """`ip -j addr show dev <name>` inside the daemon's namespace."""
    return json.loads(daemon.ns("ip", "-j", "addr", "show", "dev", name))[0]


def inet(link_info: dict[str, Any]) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for a in link_info["addr_info"] if a["family"] == "inet"]


def dnsmasq_for(daemon: Daemon, bridge: str) -> list[int]:
    """Pids of every dnsmasq in the namespace serving `bridge`."""
    pids = []
    for pid in daemon.pids():
        try:
            args = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        except OSError:
            continue
        if args[0].endswith("dnsmasq") and f"--interface={bridge}" in args:
            pids.append(int(pid))
    return pids


def state_files(machine: Machine) -> list[str]:
    directory = machine.path(STATE_DIR)
    return sorted(p.name for p in directory.glob("lxd*")) if directory.exists() else []


# -- vxlan: LXD's own bridge on the fan ---------------------------------------------------


def test_first_apply_creates_network_and_profile_device(
    lxd_fan: LxdFan, daemon: Daemon, machine: NetnsMachine, profile: str
):
    f = new_fan()
    before = daemon.raw(f"/1.0/profiles/{profile}")

    changes = lxd_fan.apply([f], "vxlan", profile)

    assert changes == [
        f"created LXD network {f.bridge}",
        f"set eth0 of LXD profile {profile}: name=eth0, network={f.bridge}, type=nic",
    ]
    network = daemon.get(f"/1.0/networks/{f.bridge}")
    assert network["managed"] is True
    assert network["type"] == "bridge"
    assert network["config"] == expected_config(f)
    assert network["description"] == f"fan-networking: fan {f.mapping}, segment {f.segment}"
    devices = daemon.get(f"/1.0/profiles/{profile}")["devices"]
    assert devices["eth0"] == {"type": "nic", "name": "eth0", "network": f.bridge}
    assert devices["data"] == {"type": "disk", "source": "/srv", "path": "/srv"}  # the operator's, kept
    # The bridge inside the daemon's namespace, and the dnsmasq LXD runs for it.
    bridge = link(daemon, f.bridge)
    assert inet(bridge) == [f"{f.gateway}/24"]
    assert bridge["mtu"] == 1450
    args = daemon.dnsmasq_args(f.bridge)
    assert f"{f.gateway + 1},{f.segment.broadcast_address - 1},1h" in args
    assert "--dhcp-option-force=26,1450" in args  # LXD 5.0.2 sends the MTU by itself
    # The profile as LXD returned it before the change, and the network, are recorded.
    assert machine.read_text(f"{STATE_DIR}/lxd-profile-{profile}.json") == before
    assert json.loads(machine.read_text(RECORD_FILE))["networks"] == [f.bridge]


def test_second_apply_changes_nothing_and_writes_nothing(
    lxd_fan: LxdFan, machine: NetnsMachine, api_log: list[tuple[str, str]], profile: str
):
    fans = [new_fan(), new_fan()]
    assert lxd_fan.apply(fans, "vxlan", profile)
    api_log.clear()
    machine.commands.clear()

    assert lxd_fan.apply(fans, "vxlan", profile) == []

    assert writes(api_log) == []
    assert ("GET", f"/1.0/networks/{fans[1].bridge}") in api_log  # it did look
    assert machine.commands == []


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [("mtu", 1400, "bridge.mtu"), ("dhcp", False, "ipv4.dhcp"), ("host_reserve", 5, "ipv4.dhcp.ranges")],
)
def test_changing_one_option_changes_only_that(
    lxd_fan: LxdFan,
    daemon: Daemon,
    api_log: list[tuple[str, str]],
    profile: str,
    *,
    field: str,
    value: Any,
    key: str,
):
    f = new_fan()
    lxd_fan.apply([f], "vxlan", profile)
    profile_before = daemon.raw(f"/1.0/profiles/{profile}")
    api_log.clear()
    changed = dataclasses.replace(f, **{field: value})

    assert lxd_fan.apply([changed], "vxlan", profile) == [f"updated LXD network {f.bridge}: {key}"]

    assert writes(api_log) == [("PUT", f"/1.0/networks/{f.bridge}")]
    config = daemon.get(f"/1.0/networks/{f.bridge}")["config"]
    assert config == expected_config(changed)
    assert {k for k in config if config[k] != expected_config(f)[k]} == {key}
    assert daemon.raw(f"/1.0/profiles/{profile}") == profile_before
    args = daemon.dnsmasq_args(f.bridge)
    if field == "mtu":
        assert link(daemon, f.bridge)["mtu"] == 1400
        assert "--dhcp-option-force=26,1400" in args
    elif field == "dhcp":
        assert not any(a.startswith("--dhcp-range") for a in args)
    else:
        assert f"{f.gateway + 5},{f.segment.broadcast_address - 1},1h" in args


def test_charm_made_plain_bridge_is_replaced_by_lxd_network(
    lxd_fan: LxdFan, daemon: Daemon, machine: NetnsMachine, profile: str
):
    f = new_fan()
    # What the VXLAN plane leaves when it ran first: a plain bridge marked as the charm's.
    daemon.ns("ip", "link", "add", f.bridge, "mtu", "1450", "type", "bridge")
    daemon.ns("ip", "link", "set", f.bridge, "alias", "fan-networking", "up")
    daemon.ns("ip", "addr", "add", f"{f.gateway}/24", "dev", f.bridge)
    plain_index = link(daemon, f.bridge)["ifindex"]
    assert daemon.get(f"/1.0/networks/{f.bridge}")["managed"] is False

    changes = lxd_fan.apply([f], "vxlan", profile)

    assert changes[0] == f"created LXD network {f.bridge}"
    assert ["ip", "link", "del", "dev", f.bridge] in machine.commands
    assert daemon.get(f"/1.0/networks/{f.bridge}")["managed"] is True
    bridge = link(daemon, f.bridge)
    assert bridge["ifindex"] != plain_index
    assert inet(bridge) == [f"{f.gateway}/24"]
    assert dnsmasq_for(daemon, f.bridge)


def test_foreign_lxd_network_of_the_same_name_is_refused_and_untouched(
    lxd_fan: LxdFan, daemon: Daemon, machine: NetnsMachine, api_log: list[tuple[str, str]], profile: str
):
    f = new_fan()
    daemon.client.call(
        "POST",
        "/1.0/networks",
        {
            "name": f.bridge,
            "description": "the operator's",
            "config": {"ipv4.address": f"{f.gateway}/24", "ipv6.address": "none"},
        },
    )
    network_before = daemon.raw(f"/1.0/networks/{f.bridge}")
    profile_before = daemon.raw(f"/1.0/profiles/{profile}")

    with pytest.raises(PlanError, match=rf"LXD network {f.bridge} exists .*`lxc network delete {f.bridge}`"):
        lxd_fan.apply([f], "vxlan", profile)

    assert writes(api_log) == []
    assert daemon.raw(f"/1.0/networks/{f.bridge}") == network_before
    assert daemon.raw(f"/1.0/profiles/{profile}") == profile_before
    assert json.loads(machine.read_text(RECORD_FILE))["networks"] == []
    # ...and removing the charm's LXD side leaves it alone too.
    lxd_fan.remove()
    assert daemon.raw(f"/1.0/networks/{f.bridge}") == network_before


def test_foreign_interface_of_the_same_name_is_refused_and_untouched(
    lxd_fan: LxdFan, daemon: Daemon, machine: NetnsMachine, api_log: list[tuple[str, str]], profile: str
):
    f = new_fan()
    daemon.ns("ip", "link", "add", f.bridge, "type", "bridge")  # not marked as the charm's
    index = link(daemon, f.bridge)["ifindex"]

    with pytest.raises(PlanError, match=rf"interface {f.bridge} exists .*`ip link del {f.bridge}`"):
        lxd_fan.apply([f], "vxlan", profile)

    assert writes(api_log) == []
    assert link(daemon, f.bridge)["ifindex"] == index
    assert not any(c[:3] == ["ip", "link", "del"] for c in machine.commands)


# -- ubuntu-fan: fanctl's bridge ---------------------------------------------------------


def test_ubuntu_fan_bridges_the_profile_to_fanctls_bridge(
    lxd_fan: LxdFan, daemon: Daemon, api_log: list[tuple[str, str]], profile: str
):
    f = new_fan()

    assert lxd_fan.apply([f], "ubuntu-fan", profile) == [
        f"set eth0 of LXD profile {profile}: mtu=1450, name=eth0, nictype=bridged, parent={f.bridge}, type=nic"
    ]

    assert daemon.get(f"/1.0/profiles/{profile}")["devices"]["eth0"] == {
        "type": "nic",
        "name": "eth0",
        "nictype": "bridged",
        "parent": f.bridge,
        "mtu": "1450",
    }
    assert writes(api_log) == [("PUT", f"/1.0/profiles/{profile}")]  # no LXD network
    api_log.clear()
    assert lxd_fan.apply([f], "ubuntu-fan", profile) == []
    assert writes(api_log) == []


def test_switching_data_planes_moves_the_profile_and_drops_the_network(
    lxd_fan: LxdFan, daemon: Daemon, profile: str
):
    f = new_fan()
    lxd_fan.apply([f], "vxlan", profile)

    changes = lxd_fan.apply([f], "ubuntu-fan", profile)

    # LXD counts a NIC bridged to its bridge as a user of the network: eth0 goes first.
    assert changes == [
        f"removed eth0 from LXD profile {profile}",
        f"deleted LXD network {f.bridge}",
        f"set eth0 of LXD profile {profile}: mtu=1450, name=eth0, nictype=bridged, parent={f.bridge}, type=nic",
    ]
    assert daemon.get(f"/1.0/networks/{f.bridge}") is None
    assert daemon.get(f"/1.0/profiles/{profile}")["devices"]["eth0"]["parent"] == f.bridge
    # And back: the network returns, eth0 moves onto it in one step.
    assert lxd_fan.apply([f], "vxlan", profile) == [
        f"created LXD network {f.bridge}",
        f"set eth0 of LXD profile {profile}: name=eth0, network={f.bridge}, type=nic",
    ]


def test_moving_to_another_fan_moves_eth0_before_deleting_the_old_network(
    lxd_fan: LxdFan, daemon: Daemon, api_log: list[tuple[str, str]], profile: str
):
    old, new = new_fan(), new_fan()
    lxd_fan.apply([old], "vxlan", profile)
    api_log.clear()

    assert lxd_fan.apply([new], "vxlan", profile) == [
        f"created LXD network {new.bridge}",
        f"set eth0 of LXD profile {profile}: name=eth0, network={new.bridge}, type=nic",
        f"deleted LXD network {old.bridge}",
    ]
    assert writes(api_log) == [
        ("POST", "/1.0/networks"),
        ("PUT", f"/1.0/profiles/{profile}"),
        ("DELETE", f"/1.0/networks/{old.bridge}"),
    ]


# -- removal -------------------------------------------------------------------------------


def test_remove_restores_the_profile_byte_for_byte_and_deletes_only_the_charms_networks(
    lxd_fan: LxdFan, daemon: Daemon, machine: NetnsMachine, api_log: list[tuple[str, str]]
):
    # The default profile as an operator left it: eth0 on a network of their own.
    own = f"keep-{secrets.token_hex(3)}"
    daemon.client.call(
        "POST",
        "/1.0/networks",
        {"name": own, "config": {"ipv4.address": "10.99.0.1/24", "ipv6.address": "none"}},
    )
    daemon.client.call(
        "PUT",
        "/1.0/profiles/default",
        {
            "config": {"user.note": "the operator's"},
            "description": "Default LXD profile",
            "devices": {"eth0": {"type": "nic", "network": own, "name": "eth0"}},
        },
    )
    raw_before = daemon.raw("/1.0/profiles/default")
    shown_before = daemon.lxc("profile", "show", "default")
    fans = [new_fan(), new_fan()]
    lxd_fan.apply(fans, "vxlan", "default")
    assert daemon.get("/1.0/profiles/default")["devices"]["eth0"]["network"] == fans[0].bridge

    changes = lxd_fan.remove()

    assert changes == [
        "restored eth0 of LXD profile default",
        f"deleted LXD network {fans[0].bridge}",
        f"deleted LXD network {fans[1].bridge}",
    ]
    assert daemon.raw("/1.0/profiles/default") == raw_before
    assert daemon.lxc("profile", "show", "default") == shown_before
    assert all(daemon.get(f"/1.0/networks/{f.bridge}") is None for f in fans)
    assert daemon.get(f"/1.0/networks/{own}")["managed"] is True
    assert state_files(machine) == []
    api_log.clear()
    assert lxd_fan.remove() == []
    assert writes(api_log) == []


def test_remove_names_the_instances_still_on_the_network(
    lxd_fan: LxdFan, daemon: Daemon, machine: NetnsMachine, profile: str
):
    f = new_fan()
    lxd_fan.apply([f], "vxlan", profile)
    data_disk = {"type": "disk", "source": "/srv", "path": "/srv"}
    pool, instance = f"pool-{secrets.token_hex(3)}", f"c-{secrets.token_hex(3)}"
    daemon.client.call("POST", "/1.0/storage-pools", {"name": pool, "driver": "dir"})
    daemon.client.call(
        "POST",
        "/1.0/instances",
        {
            "name": instance,
            "source": {"type": "none"},
            "profiles": [],
            "devices": {
                "root": {"type": "disk", "path": "/", "pool": pool},
                "eth1": {"type": "nic", "network": f.bridge, "name": "eth1"},
            },
        },
    )

    with pytest.raises(ApplyError, match=rf"{f.bridge} \(instance {instance}\).*move or delete"):
        lxd_fan.remove()

    # The profile is back regardless; the network stays, recorded for the next attempt.
    assert daemon.get(f"/1.0/profiles/{profile}")["devices"] == {"data": data_disk}
    assert daemon.get(f"/1.0/networks/{f.bridge}")["managed"] is True
    assert json.loads(machine.read_text(RECORD_FILE))["networks"] == [f.bridge]
    daemon.client.call("DELETE", f"/1.0/instances/{instance}")
    assert lxd_fan.remove() == [f"deleted LXD network {f.bridge}"]
    assert state_files(machine) == []


def test_apply_without_fans_is_remove(lxd_fan: LxdFan, daemon: Daemon, profile: str):
    f = new_fan()
    before = daemon.raw(f"/1.0/profiles/{profile}")
    lxd_fan.apply([f], "vxlan", profile)

    assert lxd_fan.apply([], "vxlan", profile) == [
        f"restored eth0 of LXD profile {profile}",
        f"deleted LXD network {f.bridge}",
    ]
    assert daemon.raw(f"/1.0/profiles/{profile}") == before


def test_changing_the_profile_restores_the_old_one(
    lxd_fan: LxdFan, daemon: Daemon, api_log: list[tuple[str, str]], profile: str
):
    f = new_fan()
    old_before = daemon.raw("/1.0/profiles/default")
    lxd_fan.apply([f], "vxlan", "default")
    api_log.clear()

    changes = lxd_fan.apply([f], "vxlan", profile)

    assert changes == [
        "restored eth0 of LXD profile default",
        f"set eth0 of LXD profile {profile}: name=eth0, network={f.bridge}, type=nic",
    ]
    assert daemon.raw("/1.0/profiles/default") == old_before
    assert ("POST", "/1.0/networks") not in api_log


# -- daemon restarts, state, errors ---------------------------------------------------------


def test_daemon_restart_keeps_everything_and_next_apply_changes_nothing(
    lxd_fan: LxdFan, daemon: Daemon, api_log: list[tuple[str, str]], profile: str
):
    f = new_fan()
    lxd_fan.apply([f], "vxlan", profile)
    network_before = daemon.get(f"/1.0/networks/{f.bridge}")
    profile_before = daemon.raw(f"/1.0/profiles/{profile}")
    [old_dnsmasq] = dnsmasq_for(daemon, f.bridge)

    daemon.kill(signal.SIGKILL)
    assert not lxd_fan.available
    assert dnsmasq_for(daemon, f.bridge) == [old_dnsmasq]  # LXD's children outlive it
    daemon.start()

    assert lxd_fan.available
    assert daemon.get(f"/1.0/networks/{f.bridge}") == network_before
    assert daemon.raw(f"/1.0/profiles/{profile}") == profile_before
    bridge = link(daemon, f.bridge)
    assert inet(bridge) == [f"{f.gateway}/24"]
    assert bridge["mtu"] == 1450
    [new_dnsmasq] = dnsmasq_for(daemon, f.bridge)  # replaced, not doubled
    assert new_dnsmasq != old_dnsmasq
    assert "--dhcp-option-force=26,1450" in daemon.dnsmasq_args(f.bridge)
    api_log.clear()
    assert lxd_fan.apply([f], "vxlan", profile) == []
    assert writes(api_log) == []


def test_state_shows_networks_and_profile(lxd_fan: LxdFan, daemon: Daemon, profile: str):
    f = new_fan()
    lxd_fan.apply([f], "vxlan", profile)

    state = lxd_fan.state()

    assert state["available"] is True
    assert state["socket"] == str(daemon.socket)
    assert state["networks"][f.bridge]["config"] == expected_config(f)
    assert state["networks"][f.bridge]["used_by"] == [f"/1.0/profiles/{profile}"]
    assert state["profile"] == profile
    assert state["eth0"] == {"type": "nic", "name": "eth0", "network": f.bridge}


def test_socket_discovery_and_availability(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    machine = Machine(tmp_path)  # its /var/lib/lxd and /var/snap are empty
    monkeypatch.delenv("LXD_DIR", raising=False)
    absent = LxdFan(machine)
    assert absent.socket_path is None
    assert absent.available is False
    assert absent.state() == {"available": False}
    with pytest.raises(ApplyError, match="no unix socket"):
        absent.apply([new_fan()], "vxlan", "default")

    assert LxdFan(machine, tmp_path / "missing.socket").available is False
    monkeypatch.setenv("LXD_DIR", str(daemon.lxd_dir))
    found = LxdFan(machine)
    assert found.socket_path == daemon.socket
    assert found.available is True


def test_missing_profile_is_a_plan_error(lxd_fan: LxdFan, daemon: Daemon):
    f = new_fan()
    with pytest.raises(PlanError, match="LXD profile no-such-profile does not exist"):
        lxd_fan.apply([f], "vxlan", "no-such-profile")
    # The network was made before the profile was found missing; it is recorded, so removable.
    assert lxd_fan.remove() == [f"deleted LXD network {f.bridge}"]


def test_lxd_refusal_is_an_apply_error_with_lxds_message(
    lxd_fan: LxdFan, daemon: Daemon, machine: NetnsMachine, profile: str
):
    f = new_fan(mtu=100000)

    with pytest.raises(ApplyError, match=r"LXD POST /1.0/networks: .*bridge.mtu.*Out of MTU range"):
        lxd_fan.apply([f], "vxlan", profile)

    assert daemon.get(f"/1.0/networks/{f.bridge}") is None
    assert json.loads(machine.read_text(RECORD_FILE))["networks"] == []


def test_recorded_network_that_is_gone_is_created_again(lxd_fan: LxdFan, daemon: Daemon, profile: str):
    f = new_fan()
    lxd_fan.apply([f], "vxlan", profile)
    # As after a crash between recording the network and creating it, or an operator's delete.
    daemon.client.call("PUT", f"/1.0/profiles/{profile}", {"config": {}, "description": "", "devices": {}})
    daemon.client.call("DELETE", f"/1.0/networks/{f.bridge}")

    assert lxd_fan.apply([f], "vxlan", profile) == [
        f"created LXD network {f.bridge}",
        f"set eth0 of LXD profile {profile}: name=eth0, network={f.bridge}, type=nic",
    ]
    assert daemon.get(f"/1.0/networks/{f.bridge}")["config"] == expected_config(f)
