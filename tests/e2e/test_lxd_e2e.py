"""The charm with the real LXD daemon on a machine: LXD's bridge carries the vxlan fan.

Machine h1 runs Debian's LXD daemon inside its own namespace (LXD_DIR in a temporary
directory, so /var/lib/lxd is never touched); the charm's hooks on h1 find it through
LXD_DIR. No image can be downloaded here, so a "container" is a namespace plugged into
LXD's bridge that takes its address from LXD's DHCP server (busybox udhcpc).
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import MAPPING, FanLab, segment_of
from tests.e2e.lab import Lab, run
from tests.e2e.model import Model
from tests.lxd.lxd_harness import Daemon, daemon_on

UDHCPC_SCRIPT = """#!/bin/sh
# Apply the lease udhcpc got, and keep what it said for the test.
[ "$1" = bound ] || exit 0
ip addr add "$ip/$mask" dev "$interface"
ip link set "$interface" mtu "$mtu"
ip route add default via "$router"
echo "$ip $mask $router $mtu" > "$LEASE_FILE"
"""


@pytest.fixture(scope="module")
def lxd_lab() -> Iterator[tuple[FanLab, Daemon]]:
    if shutil.which("lxd") is None or shutil.which("busybox") is None:
        pytest.skip("needs Debian's lxd and busybox (bash .ci/setup installs them)")
    with Lab() as lab:
        h1 = lab.add_machine("h1", "10.123.1.10")
        lab.add_machine("h2", "10.123.2.20")
        with daemon_on(h1) as daemon:
            yield FanLab(lab, Model(lab, {"fan-config": MAPPING})), daemon


def assert_reaches(ns: str, address: str) -> None:
    ping = run(
        ["ip", "netns", "exec", ns, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", address], check=False
    )
    assert ping.returncode == 0, ping.stdout


def assert_unchanged(logs: list[str]) -> None:
    """The hook ran (update-status reconciles) and changed nothing: the charm logs changes."""
    assert any("Emitting Juju event update_status" in line for line in logs), logs
    assert not [line for line in logs if line.startswith("INFO applied")]


def dhcp_container(fan_lab: FanLab, name: str) -> tuple[str, dict[str, str]]:
    """A namespace on h1's fan-250 that asks LXD's DHCP server for an address; its lease."""
    h1 = fan_lab.machine(name)
    container = fan_lab.lab.add_container(h1, None, "fan-250", 1500)
    script = fan_lab.lab.workdir / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    lease = fan_lab.lab.workdir / f"lease-{container.name}"
    container.exec(
        "env", f"LEASE_FILE={lease}", "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "5", "-O", "mtu", "-s", str(script),
        timeout=60,
    )  # fmt: skip
    ip, mask, router, mtu = lease.read_text().split()
    return container.name, {"ip": ip, "mask": mask, "router": router, "mtu": mtu}


def test_lxd_carries_the_fan_and_gives_containers_addresses(lxd_lab):
    fan_lab, daemon = lxd_lab
    profile_before = daemon.raw("/1.0/profiles/default")
    fan_lab.model.deploy(list(fan_lab.lab.machines.values()))
    h1, h2 = fan_lab.machine("h1"), fan_lab.machine("h2")
    unit = fan_lab.model.units[0]
    assert unit.status == ("active", f"fan {segment_of(h1)} on fan-250 (vxlan, mtu 1450, 1 peer)")

    network = daemon.get("/1.0/networks/fan-250")
    assert network["managed"] is True
    config = network["config"]
    gateway = segment_of(h1).network_address + 1
    assert config["ipv4.address"] == f"{gateway}/24"
    assert config["ipv4.nat"] == "false"
    assert config["bridge.mtu"] == "1450"
    assert config["ipv4.dhcp.ranges"] == f"{gateway + 1}-{segment_of(h1).broadcast_address - 1}"
    eth0 = daemon.get("/1.0/profiles/default")["devices"]["eth0"]
    assert eth0 == {"name": "eth0", "network": "fan-250", "type": "nic"}
    # The vxlan plane uses LXD's bridge (without claiming it) and adds its tunnel beside it.
    links = {link["ifname"]: link for link in json.loads(h1.exec("ip", "-j", "-d", "link").stdout)}
    assert "ifalias" not in links["fan-250"] and links["vx-250"]["ifalias"] == "fan-networking"
    assert links["vx-250"]["linkinfo"]["info_data"]["id"] == 16384000

    name, lease = dhcp_container(fan_lab, "h1")
    assert lease["ip"].startswith(str(segment_of(h1).network_address)[:-1]) and lease["ip"] != str(gateway)
    assert lease["router"] == str(gateway) and lease["mtu"] == "1450" and lease["mask"] == "24"
    (remote,) = fan_lab.add_containers(h2, count=1)
    assert_reaches(name, str(remote.address.ip))

    # A hook with nothing changed makes no LXD change and no kernel change (the charm logs
    # every change it makes, LXD's included, as "applied ...").
    fan_lab.model.update_status()
    assert_unchanged(unit.logs)

    # LXD restarts (a package upgrade, a crash): the fan keeps carrying, nothing to redo.
    daemon.kill(signal.SIGTERM)
    daemon.start()
    assert_reaches(name, str(remote.address.ip))
    fan_lab.model.update_status()
    assert unit.status[0] == "active"
    assert_unchanged(unit.logs)

    # Removal gives the profile back byte for byte and deletes only the charm's network.
    run(["ip", "-n", h1.ns, "link", "del", h1.containers[0].host_port])
    fan_lab.model.remove_unit(unit)
    assert daemon.raw("/1.0/profiles/default") == profile_before
    assert daemon.get("/1.0/networks/fan-250") is None
    assert not {"fan-250", "vx-250"} & {
        link["ifname"] for link in json.loads(h1.exec("ip", "-j", "link").stdout)
    }
