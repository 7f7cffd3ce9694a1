"""`dataplane=auto` switching from classic FAN to vxlan, keeping every address and link.

Classic FAN needs Ubuntu's FAN kernel, which this machine lacks: here `fanctl` is the
fake from tests/fakes, which builds fanctl's bridge (with the gateway) for real in the
machine's namespace but no fan-map tunnel, and the machines say they have FAN support
(/proc/sys/net/fan/version under their root). What is real is the switch: the charm
unplugs the containers, brings the classic fan down, builds the vxlan fan and plugs them
back in, after which they reach a machine that never had FAN.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ADDRESSES, MAPPING, FanLab, segment_of
from tests.e2e.lab import Lab, LabMachine
from tests.e2e.model import Model


def fan_kernel(machine: LabMachine) -> LabMachine:
    version = machine.root / "proc/sys/net/fan/version"
    version.parent.mkdir(parents=True)
    version.write_text("3\n")
    machine.env["FAKE_FANCTL_BRIDGES"] = "1"
    return machine


@pytest.fixture(scope="module")
def classic_lab() -> Iterator[FanLab]:
    with Lab() as lab:
        machines = [fan_kernel(lab.add_machine(name, ADDRESSES[name])) for name in ("h1", "h2")]
        built = FanLab(lab, Model(lab, {"fan-config": MAPPING}, fakes=("systemctl", "fanctl")))
        built.model.deploy(machines)
        yield built


def test_a_unit_without_fan_switches_everyone_to_vxlan_keeping_containers(classic_lab: FanLab):
    model, h1, h2 = classic_lab.model, classic_lab.machine("h1"), classic_lab.machine("h2")
    for unit in model.units.values():
        assert unit.status == ("active", f"fan {segment_of(unit.machine)} on fan-250 (ubuntu-fan, mtu 1450)")
    (c1,) = classic_lab.add_containers(h1, count=1)
    (c2,) = classic_lab.add_containers(h2, count=1)

    h3 = classic_lab.lab.add_machine("h3", ADDRESSES["h3"])  # a 24.04 kernel: no FAN
    model.add_unit(h3)

    assert json.loads(model.app_data["dataplane"]) == "vxlan"
    for unit in model.units.values():
        assert unit.status == (
            "active",
            f"fan {segment_of(unit.machine)} on fan-250 (vxlan, mtu 1450, 2 peers)",
        )
    for machine, container in ((h1, c1), (h2, c2)):
        plugged = machine.exec("ip", "-br", "link", "show", "master", "fan-250").stdout
        assert container.host_port in plugged, plugged
        assert str(container.address) in container.exec("ip", "-4", "-br", "addr", "show", "eth0").stdout
        assert not (machine.root / "etc/network/fan").exists()
    (c3,) = classic_lab.add_containers(h3, count=1)
    for src, dst in ((c1, c2), (c1, c3), (c2, c3)):
        ping = src.exec("ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", str(dst.address.ip), check=False)
        assert ping.returncode == 0, ping.stdout
