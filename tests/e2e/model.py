"""A small stand-in for Juju: runs each unit's hooks with the real charm, on its own machine.

There is no Juju controller here, so this plays its part: it keeps each unit's peer data
and the leader's app data, runs hooks in the unit's machine namespace (tests/e2e/hook.py
through ops.testing, with real `ip`, `bridge`, `nft`, `sysctl`), and delivers
relation-changed to the other units until relation data stops changing, as Juju would.
`systemctl` is the only faked tool (no systemd runs here): it records calls.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.lab import UNDERLAY, Lab, LabMachine

REPO = Path(__file__).resolve().parents[2]
FAKE_TOOL = REPO / "tests" / "fakes" / "fake_tool.py"
HOOK = REPO / "tests" / "e2e" / "hook.py"
APP = "fan-networking"


class HookError(Exception):
    pass


@dataclasses.dataclass
class Unit:
    id: int
    machine: LabMachine
    data: dict[str, str] = dataclasses.field(default_factory=dict)  # its fan-peers unit databag
    status: tuple[str, str] = ("unknown", "")
    logs: list[str] = dataclasses.field(default_factory=list)  # juju-log lines of its last hook

    @property
    def name(self) -> str:
        return f"{APP}/{self.id}"


class Model:
    """One application of the charm, its units, config and relation data."""

    def __init__(self, lab: Lab, config: dict[str, Any], fakes: tuple[str, ...] = ("systemctl",)):
        self.lab = lab
        self.config = dict(config)
        self.units: dict[int, Unit] = {}
        self.app_data: dict[str, str] = {}
        self.leader: int | None = None
        self._next_id = 0
        self.hooks_run = 0
        self._fakebin = lab.workdir / "fakebin"
        self._fakebin.mkdir(exist_ok=True)
        for tool in fakes:  # only tools that cannot run here: systemctl (no systemd), fanctl
            if not (self._fakebin / tool).exists():
                (self._fakebin / tool).symlink_to(FAKE_TOOL)

    # -- lifecycle --------------------------------------------------------------------

    def deploy(self, machines: list[LabMachine]) -> list[Unit]:
        units = [self.add_unit(m, settle=False) for m in machines]
        self.settle()
        return units

    def add_unit(self, machine: LabMachine, settle: bool = True) -> Unit:
        unit = Unit(self._next_id, machine)
        self._next_id += 1
        self.units[unit.id] = unit
        agent = machine.root / f"var/lib/juju/agents/unit-{APP}-{unit.id}"
        agent.mkdir(parents=True, exist_ok=True)
        if self.leader is None:
            self.leader = unit.id
        self.hook(unit, "install")
        if self.leader == unit.id:
            self.hook(unit, "leader_elected")
        self.hook(unit, "config_changed")
        self.hook(unit, "start")
        for other in self.others(unit):
            self.hook(other, "peer_joined", remote_unit=unit.id)
            self.hook(unit, "peer_joined", remote_unit=other.id)
        if settle:
            self.settle()
        return unit

    def remove_unit(self, unit: Unit, settle: bool = True) -> None:
        """What `juju remove-unit` does: departed on the others, then stop and remove."""
        del self.units[unit.id]
        for other in self.units.values():
            self.hook(other, "peer_departed", remote_unit=unit.id)
        self.hook(unit, "stop", peers_visible=False)
        self.hook(unit, "remove", peers_visible=False)
        agent = unit.machine.root / f"var/lib/juju/agents/unit-{APP}-{unit.id}"
        if agent.exists():
            agent.rmdir()
        if self.leader == unit.id:
            self.leader = min(self.units) if self.units else None
            if self.leader is not None:
                self.hook(self.units[self.leader], "leader_elected")
        if settle:
            self.settle()

    def set_config(self, **changes: Any) -> None:
        self.config.update({k.replace("_", "-"): v for k, v in changes.items()})
        for unit in list(self.units.values()):
            self.hook(unit, "config_changed")
        self.settle()

    def settle(self, rounds: int = 6) -> None:
        """Deliver relation-changed until no databag changes (Juju's eventual consistency)."""
        for _ in range(rounds):
            before = self._snapshot()
            for unit in list(self.units.values()):
                remote = next((o.id for o in self.others(unit)), None)
                if remote is not None:
                    self.hook(unit, "peer_changed", remote_unit=remote)
            if self._snapshot() == before:
                return
        raise HookError("relation data did not settle")

    def update_status(self) -> None:
        for unit in list(self.units.values()):
            self.hook(unit, "update_status")

    def run_action(self, unit: Unit, action: str, **params: Any) -> tuple[dict[str, Any], str | None]:
        response = self._run(unit, {"event": "action", "action": action, "params": params})
        return response.get("results") or {}, response.get("failure")

    # -- plumbing ---------------------------------------------------------------------

    def others(self, unit: Unit) -> list[Unit]:
        return [u for u in self.units.values() if u.id != unit.id]

    def hook(
        self, unit: Unit, event: str, remote_unit: int | None = None, peers_visible: bool = True
    ) -> None:
        response = self._run(unit, {"event": event, "remote_unit": remote_unit}, peers_visible)
        unit.status = (response["status"][0], response["status"][1])
        unit.logs = response["logs"]
        unit.data = response["unit_data"]
        if unit.id == self.leader:
            self.app_data = response["app_data"]

    def _run(self, unit: Unit, request: dict[str, Any], peers_visible: bool = True) -> dict[str, Any]:
        machine = unit.machine
        request = {
            **request,
            "root": str(machine.root),
            "app": APP,
            "unit_id": unit.id,
            "machine_id": machine.machine_id,
            "config": self.config,
            "leader": unit.id == self.leader,
            "address": str(machine.address.ip),
            "cidr": str(UNDERLAY),
            "peers": {str(o.id): o.data for o in self.others(unit)} if peers_visible else {},
            "unit_data": unit.data,
            "app_data": self.app_data,
        }
        env = {
            **os.environ,
            "PATH": f"{self._fakebin}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join(str(REPO / d) for d in ("src", "lib", "")),
            "FAKE_ROOT": str(machine.root),
            "FAKE_LOG": str(machine.root / "fake-calls.jsonl"),
            **machine.env,
        }
        proc = subprocess.run(
            [*machine.hook_prefix, "ip", "netns", "exec", machine.ns, sys.executable, str(HOOK)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        self.hooks_run += 1
        if proc.returncode != 0:
            raise HookError(f"{request['event']} on {unit.name} failed:\n{proc.stderr[-4000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def _snapshot(self) -> str:
        return json.dumps([self.app_data, {u.id: u.data for u in self.units.values()}], sort_keys=True)
