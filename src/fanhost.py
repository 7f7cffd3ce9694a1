"""The fan of one machine as a whole: its data plane, LXD, and moving between planes.

The order matters, and is kept here so the charm only says what it wants:
- LXD before the vxlan plane: LXD creates the bridge (it refuses an existing interface),
  and the plane adds its tunnel beside it.
- LXD before the ubuntu-fan plane too: LXD must let go of its networks before fanctl
  creates bridges of the same names; if it cannot (instances use them), nothing running
  has been touched yet.
- On a switch between planes, what is plugged into the fan bridges (containers) is
  unplugged first (fanctl refuses to take down a bridge in use) and plugged back into
  the new bridges of the same names, so containers keep their addresses and their link.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from dataplane import make_dataplane, read_applied, write_applied
from lxd import LxdFan
from machine import CommandError, Machine
from plan import LocalFan

logger = logging.getLogger(__name__)


class FanHost:
    """Applies and removes this machine's fan (data plane and LXD)."""

    def __init__(self, machine: Machine):
        self.machine = machine

    def apply(
        self, dataplane: str, fans: Sequence[LocalFan], lxd_profile: str | None, peers_only: bool = False
    ) -> list[str]:
        """Carry `fans` with `dataplane`; put `lxd_profile`'s containers on it (None: no LXD).

        `peers_only`: the hook is about peers (see DataPlane.apply's `since`).
        """
        previous, old_fans = read_applied(self.machine)
        lxd = LxdFan(self.machine)
        use_lxd = lxd_profile is not None and lxd.available
        switching = previous is not None and previous != dataplane
        changes: list[str] = []
        ports = self._unplug([f.bridge for f in old_fans]) if switching else {}
        try:
            if use_lxd and dataplane == "ubuntu-fan":
                changes += lxd.apply(fans, dataplane, lxd_profile or "")
            if switching:
                changes += make_dataplane(previous or "", self.machine).teardown()
            if use_lxd and dataplane == "vxlan":
                changes += lxd.apply(fans, dataplane, lxd_profile or "")
            elif lxd_profile is None and lxd.recorded:
                changes += lxd.remove()
            plane = make_dataplane(dataplane, self.machine)
            plane.prepare()
            changes += plane.apply(fans, since=old_fans if peers_only and not switching else None)
        finally:
            changes += self._plug(ports)
        write_applied(self.machine, dataplane, fans)
        return changes

    def teardown(self) -> list[str]:
        """Remove everything of the fan this machine carries (LXD first: its bridge is LXD's)."""
        lxd = LxdFan(self.machine)
        changes = lxd.remove() if lxd.recorded else []
        previous, _ = read_applied(self.machine)
        if previous is not None:
            changes += make_dataplane(previous, self.machine).teardown()
        write_applied(self.machine, None, [])
        return changes

    def state(self) -> dict[str, Any]:
        """What the machine holds: the data plane's kernel state, and LXD's side if any."""
        dataplane, _ = read_applied(self.machine)
        state: dict[str, Any] = {}
        if dataplane is not None:
            state["kernel"] = make_dataplane(dataplane, self.machine).kernel_state()
        lxd = LxdFan(self.machine)
        if lxd.available or lxd.recorded:
            state["lxd"] = lxd.state()
        return state

    def _unplug(self, bridges: Sequence[str]) -> dict[str, list[str]]:
        """Take the ports of `bridges` (containers' links, not tunnels) off them; by bridge."""
        ports: dict[str, list[str]] = {}
        for bridge in bridges:
            try:
                links = self.machine.run_json(["ip", "-j", "-d", "link", "show", "master", bridge])
            except CommandError:
                continue  # no such bridge
            names = [
                link["ifname"]
                for link in links
                if link.get("linkinfo", {}).get("info_slave_kind") == "bridge"
                and link.get("linkinfo", {}).get("info_kind") != "vxlan"
            ]
            for name in names:
                self.machine.run(["ip", "link", "set", "dev", name, "nomaster"])
            if names:
                ports[bridge] = names
                logger.info("unplugged %s from %s for the switch", ", ".join(names), bridge)
        return ports

    def _plug(self, ports: dict[str, list[str]]) -> list[str]:
        changes = []
        for bridge, names in ports.items():
            for name in names:
                try:
                    self.machine.run(["ip", "link", "set", "dev", name, "master", bridge])
                except CommandError as e:
                    logger.error("could not plug %s back into %s: %s", name, bridge, e)
                    continue
                changes.append(f"plugged {name} back into {bridge}")
        return changes
