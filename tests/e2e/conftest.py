"""Fixtures for the end-to-end suite: a lab of namespaces and the charm deployed on it."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import shutil
from collections.abc import Iterator

import pytest

import fan
from tests.e2e.lab import Container, Lab, LabMachine, is_root, ping_flow
from tests.e2e.model import Model

MAPPING = "10.123.0.0/16=250.0.0.0/8"
ADDRESSES = {"h1": "10.123.1.10", "h2": "10.123.2.20", "h3": "10.123.3.30"}


def missing_tools() -> list[str]:
    return [t for t in ("ip", "bridge", "nft", "ping", "sysctl") if shutil.which(t) is None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if not is_root():
        reason = "the e2e suite builds network namespaces: run it as root (CI does)"
    elif missing := missing_tools():
        reason = f"missing tools: {', '.join(missing)} (bash .ci/setup installs them)"
    if reason:
        for item in items:
            if "tests/e2e" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclasses.dataclass
class FanLab:
    lab: Lab
    model: Model

    def machine(self, name: str) -> LabMachine:
        return self.lab.machines[name]

    def add_containers(self, machine: LabMachine, count: int = 2, mtu: int = 1450) -> list[Container]:
        """Containers on `machine`'s fan-250, addressed from its segment after the gateway."""
        segment = segment_of(machine)
        return [
            self.lab.add_container(
                machine,
                ipaddress.IPv4Interface(
                    f"{segment.network_address + 1 + len(machine.containers) + 1}/{segment.prefixlen}"
                ),
                "fan-250",
                mtu,
            )
            for _ in range(count)
        ]

    def containers(self) -> list[tuple[LabMachine, Container]]:
        return [(m, c) for m in self.lab.machines.values() for c in m.containers]


def steady_ping(
    lab: FanLab, src: Container, dst: Container
) -> contextlib.AbstractContextManager[dict[str, int]]:
    """A 100 packets/s flow from container `src` to `dst` around a change (see lab.ping_flow)."""
    return ping_flow(lab.lab, src.name, str(dst.address.ip))


def segment_of(machine: LabMachine, mapping: str = MAPPING) -> ipaddress.IPv4Network:
    return fan.host_segment(fan.parse_fan_config(mapping)[0], machine.address.ip)


@pytest.fixture(scope="module")
def fan_lab() -> Iterator[FanLab]:
    """Three machines on one underlay, the charm on each, two containers per machine."""
    with Lab() as lab:
        machines = [lab.add_machine(name, address) for name, address in ADDRESSES.items()]
        model = Model(lab, {"fan-config": MAPPING})
        model.deploy(machines)
        built = FanLab(lab, model)
        for machine in machines:
            built.add_containers(machine)
        yield built
