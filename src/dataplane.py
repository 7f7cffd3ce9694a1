"""The interface every data plane offers the charm, and how to pick one by name."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from machine import STATE_DIR, Machine
from plan import LocalFan

logger = logging.getLogger(__name__)

APPLIED_FILE = f"{STATE_DIR}/applied.json"  # what the machine carries: data plane and fans


class ApplyError(Exception):
    """The data plane could not reach the planned state; the message says what failed."""


class DataPlane(Protocol):
    """Carries planned fans on one machine. Every method converges and is safe to repeat."""

    name: str

    def prepare(self) -> None:
        """Install what this plane needs; cheap when it is already there."""
        ...

    def apply(self, fans: Sequence[LocalFan], since: Sequence[LocalFan] | None = None) -> list[str]:
        """Make the machine carry exactly `fans`; returns the changes made ([] if none).

        `since`: the fans last applied, given when only peers can have changed (a peer
        came or went); a plane may then change just their entries without reading the
        kernel. Other hooks pass None, so every hook that is not about peers (update-status
        among them) reads the kernel and repairs whatever drifted.
        """
        ...

    def teardown(self) -> list[str]:
        """Remove everything this plane made; returns the changes made."""
        ...

    def kernel_state(self) -> dict[str, Any]:
        """What the machine actually holds for this plane, for the `show` action."""
        ...


def make_dataplane(name: str, machine: Machine) -> DataPlane:
    """The data plane called `name` (`ubuntu-fan` or `vxlan`) on `machine`."""
    # Imported here so a hook loads only the plane it uses.
    if name == "ubuntu-fan":
        from ubuntu_fan import UbuntuFanPlane

        return UbuntuFanPlane(machine)
    if name == "vxlan":
        from vxlan import VxlanPlane

        return VxlanPlane(machine)
    raise ValueError(f"unknown data plane {name!r}")


def read_applied(machine: Machine) -> tuple[str | None, list[LocalFan]]:
    """The data plane and fans the machine carries, as last applied (None, [] if nothing)."""
    try:
        record = json.loads(machine.read_text(APPLIED_FILE) or "{}")
        return record.get("dataplane"), [LocalFan.from_dict(d) for d in record.get("fans", [])]
    except (ValueError, KeyError, TypeError) as e:
        logger.warning("ignoring unreadable %s: %s", APPLIED_FILE, e)
        return None, []


def write_applied(machine: Machine, dataplane: str | None, fans: Sequence[LocalFan]) -> None:
    """Record what the machine carries (None: nothing); the boot service re-applies it."""
    if dataplane is None:
        machine.remove(APPLIED_FILE)
        return
    record = {"dataplane": dataplane, "fans": [f.to_dict() for f in fans]}
    machine.write_text(APPLIED_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
