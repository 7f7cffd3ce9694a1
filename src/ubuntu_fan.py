"""The `ubuntu-fan` data plane: classic FAN through fanctl, on kernels with the FAN patches.

The charm owns one block of `/etc/network/fan` (lines an operator wrote elsewhere stay) and
brings each mapping up or down by difference, so a change to one mapping never touches
the others. `ubuntu-fan.service` runs `fanctl up -a` at boot, which brings the block back.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import shutil
from collections.abc import Sequence
from typing import Any

from charmlibs import systemd

from dataplane import ApplyError
from machine import CommandError, Machine, render
from plan import LocalFan, PlanError

logger = logging.getLogger(__name__)

FAN_FILE = "/etc/network/fan"
BLOCK_BEGIN = "# BEGIN fan-networking"
BLOCK_END = "# END fan-networking"
SERVICE = "ubuntu-fan.service"


@dataclasses.dataclass(frozen=True)
class FanLine:
    """One line of the charm's block: `<overlay> <host>/<prefix> [dhcp] [host-reserve N] bridge <name>`."""

    overlay: str
    underlay: str
    bridge: str
    dhcp: bool = False
    host_reserve: int = 1

    @classmethod
    def parse(cls, text: str) -> FanLine | None:
        fields = text.split()
        if len(fields) < 2 or fields[0].startswith("#"):
            return None
        flags = fields[2:]
        bridge = _flag_value(flags, "bridge") or ""
        reserve = _flag_value(flags, "host-reserve") or "1"
        return cls(fields[0], fields[1], bridge, "dhcp" in flags, int(reserve) if reserve.isdigit() else 1)

    def up_argv(self) -> list[str]:
        argv = ["fanctl", "up", "-u", self.underlay, "-o", self.overlay, f"--bridge={self.bridge}"]
        if self.dhcp:
            argv.append("--dhcp")
        if self.host_reserve != 1:
            argv.append(f"--host-reserve={self.host_reserve}")
        return argv

    def down_argv(self) -> list[str]:
        return ["fanctl", "down", "-u", self.underlay, "-o", self.overlay]


class UbuntuFanPlane:
    """Classic FAN: fanctl creates the bridge, the fan-map tunnel, NAT and dnsmasq."""

    name = "ubuntu-fan"

    def __init__(self, machine: Machine):
        self.machine = machine

    def prepare(self) -> None:
        if shutil.which("fanctl") is None:
            self.machine.install_package("ubuntu-fan")

    def apply(self, fans: Sequence[LocalFan], since: Sequence[LocalFan] | None = None) -> list[str]:
        # Classic FAN is stateless: peers change nothing here, so `since` does not matter.
        operator_text, current = self._read_block()
        _check_operator_lines(operator_text, fans)
        block = render("network-fan.j2", fans=fans)
        desired = {line.overlay: line for line in _parse_block(block)}
        changes: list[str] = []
        # Down first what goes away or changes, while the file still records it, so a
        # failure here is retried by the next hook.
        for overlay, line in current.items():
            if desired.get(overlay) != line and self._is_up(line):
                changes.append(self._fanctl(line.down_argv()))
        if self.machine.write_text(FAN_FILE, _with_block(operator_text, block)):
            changes.append(f"wrote {FAN_FILE}")
        for line in desired.values():
            # A bridge that is already up is adopted as it is: Juju's model-level fan made
            # it (see the migration guide), and fanctl would refuse a second `up`.
            if not self._is_up(line):
                changes.append(self._fanctl(line.up_argv()))
        if desired and not self.machine.succeeds(["systemctl", "is-enabled", "--quiet", SERVICE]):
            if not systemd.service_enable(SERVICE):
                raise ApplyError(f"could not enable {SERVICE}, so the fan would not return after a reboot")
            changes.append(f"enabled {SERVICE}")
        return changes

    def teardown(self) -> list[str]:
        operator_text, current = self._read_block()
        changes = [self._fanctl(line.down_argv()) for line in current.values() if self._is_up(line)]
        if current or BLOCK_BEGIN in self.machine.read_text(FAN_FILE):
            if operator_text.strip():
                self.machine.write_text(FAN_FILE, operator_text)
            else:
                self.machine.remove(FAN_FILE)
            changes.append(f"removed the charm's block from {FAN_FILE}")
        return changes

    def kernel_state(self) -> dict[str, Any]:
        _, current = self._read_block()
        return {
            "config-lines": [f"{line.overlay} {line.underlay}" for line in current.values()],
            "bridges-up": sorted(line.bridge for line in current.values() if self._is_up(line)),
        }

    def _read_block(self) -> tuple[str, dict[str, FanLine]]:
        """The file without the charm's block, and the block's lines by overlay."""
        text = self.machine.read_text(FAN_FILE)
        lines = text.splitlines(keepends=True)
        inside, outside, block = False, [], []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith(BLOCK_BEGIN):
                inside = True
            elif stripped == BLOCK_END:
                inside = False
            elif inside:
                block.append(line)
            else:
                outside.append(line)
        return "".join(outside), {line.overlay: line for line in _parse_block("".join(block))}

    def _is_up(self, line: FanLine) -> bool:
        return self.machine.path(f"/sys/class/net/{line.bridge}").exists()

    def _fanctl(self, argv: list[str]) -> str:
        try:
            self.machine.run(argv)
        except CommandError as e:
            raise ApplyError(str(e)) from None
        return " ".join(argv)


def _parse_block(text: str) -> list[FanLine]:
    return [line for raw in text.splitlines() if (line := FanLine.parse(raw))]


def _with_block(operator_text: str, block: str) -> str:
    if operator_text and not operator_text.endswith("\n"):
        operator_text += "\n"
    return operator_text + block


def _flag_value(flags: list[str], name: str) -> str | None:
    if name in flags and flags.index(name) + 1 < len(flags):
        return flags[flags.index(name) + 1]
    return None


def _check_operator_lines(operator_text: str, fans: Sequence[LocalFan]) -> None:
    """Refuse to fight a fan configured outside the charm (Juju's model fan-config, by hand)."""
    for raw in operator_text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        overlay = f"{fields[0]}.0.0.0/8" if fields[0].isdigit() else fields[0]
        try:
            network = ipaddress.ip_network(overlay, strict=False)
        except ValueError:
            continue
        for local in fans:
            if network.overlaps(local.mapping.overlay):
                raise PlanError(
                    f"{FAN_FILE} already has '{raw.strip()}' outside the charm's block: remove "
                    f"that line (and Juju's model fan-config if it wrote it) to let the charm manage "
                    f"{local.mapping.overlay}"
                )
