#!/usr/bin/env python3
"""A fan-aware principal for tests: records every FanRequirer event and what it read."""

from __future__ import annotations

import ops
from charms.fan_networking.v0.fan import FanInfo, FanRequirer


class FanRequirerCharm(ops.CharmBase):
    """Reacts to the `fan` endpoint; `seen` holds (event name, fans) per event, in order."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.seen: list[tuple[str, list[FanInfo]]] = []
        self.fan = FanRequirer(self, relation_name="fan")
        framework.observe(self.fan.on.fans_changed, self._on_fans_changed)
        framework.observe(self.fan.on.fans_removed, self._on_fans_removed)

    def _on_fans_changed(self, _: ops.EventBase) -> None:
        fans = self.fan.fans
        self.seen.append(("fans_changed", fans))
        self.unit.status = ops.ActiveStatus(
            ", ".join(f"{f.segment} via {f.gateway} on {f.bridge}" for f in fans)
        )

    def _on_fans_removed(self, _: ops.EventBase) -> None:
        self.seen.append(("fans_removed", self.fan.fans))
        self.unit.status = ops.WaitingStatus("no fan on this machine")


if __name__ == "__main__":  # pragma: nocover
    ops.main(FanRequirerCharm)
