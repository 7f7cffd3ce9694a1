"""Two principals on one machine: two units of the charm, exactly one configures it.

When the owner goes away its co-located unit takes the machine over without touching the
fan, so traffic through that machine never stops; the last unit to go tears it down.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ADDRESSES, MAPPING, FanLab, segment_of, steady_ping
from tests.e2e.lab import Lab
from tests.e2e.model import Model


@pytest.fixture(scope="module")
def two_machines() -> Iterator[FanLab]:
    with Lab() as lab:
        machines = [lab.add_machine(name, ADDRESSES[name]) for name in ("h1", "h2")]
        built = FanLab(lab, Model(lab, {"fan-config": MAPPING}))
        built.model.deploy(machines)
        for machine in machines:
            built.add_containers(machine, count=1)
        yield built


def test_one_unit_configures_the_machine_and_ownership_moves_without_loss(two_machines: FanLab):
    model, h1, h2 = two_machines.model, two_machines.machine("h1"), two_machines.machine("h2")
    owner = model.units[0]
    second = model.add_unit(h1)  # a second principal's subordinate on h1

    assert second.status == ("active", f"{owner.name} configures the fan on this machine")
    assert json.loads(second.data["underlay-addresses"]) == [ADDRESSES["h1"]]
    peer_on_h2 = model.units[1]
    assert peer_on_h2.status[1].endswith("(vxlan, mtu 1450, 1 peer)"), "one machine counts once"

    with steady_ping(two_machines, h2.containers[0], h1.containers[0]) as flow:
        model.remove_unit(owner)
    assert flow["sent"] > 200 and flow["lost"] == 0, flow
    assert second.status == ("active", f"fan {segment_of(h1)} on fan-250 (vxlan, mtu 1450, 1 peer)")
    record = json.loads((h1.root / "var/lib/fan-networking/owner.json").read_text())
    assert record["owner"] == second.name

    h1.exec("ip", "link", "del", h1.containers[0].host_port)
    model.remove_unit(second)
    links = {link["ifname"] for link in json.loads(h1.exec("ip", "-j", "link").stdout)}
    assert links == {"lo", "eth0"}
    assert str(segment_of(h1)) not in h2.exec("ip", "-4", "route").stdout
