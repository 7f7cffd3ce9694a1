#!/usr/bin/env python3
"""fan-networking: a subordinate that gives every machine a slice of a FAN overlay.

This module holds the Juju concerns only: config, relation data, status, actions and the
order of things. The FAN math is in `fan`, the per-machine plan in `plan`, and the kernel
work in the data planes (`ubuntu_fan`, `vxlan`) and `lxd`.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import ops
from charms.fan_networking.v0.fan import FanInfo, FanProvider

import fan
import plan
from dataplane import ApplyError, read_applied
from fanhost import FanHost
from machine import FAN_KERNEL_CACHE, STATE_DIR, CommandError, HostAddress, Machine

logger = logging.getLogger(__name__)

# Where the machine's files live; tests and the network-namespace e2e machines move it.
MACHINE_ROOT = Path("/")

PEERS = "fan-peers"
FAN_RELATION = "fan"
OWNER_FILE = f"{STATE_DIR}/owner.json"  # which unit of this charm configures the machine
AGENTS_DIR = "/var/lib/juju/agents"
_LXD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclasses.dataclass(frozen=True)
class CharmConfig:
    """The charm's options (dashes become underscores); invalid values raise ValueError."""

    fan_config: str = ""
    dataplane: str = "auto"
    dhcp: bool = True
    host_reserve: int = 1
    mtu: int = 0
    lxd: bool = True
    lxd_profile: str = "default"
    direct_routing: bool = False

    def __post_init__(self) -> None:
        if self.dataplane not in plan.DATAPLANES:
            raise ValueError(f"dataplane must be one of {', '.join(plan.DATAPLANES)}, not {self.dataplane!r}")
        if self.mtu < 0:
            raise ValueError(f"mtu must be 0 (automatic) or a positive MTU, not {self.mtu}")
        if self.host_reserve < 1:
            raise ValueError(f"host-reserve must be at least 1 (the gateway), not {self.host_reserve}")
        if not _LXD_NAME.match(self.lxd_profile):
            raise ValueError(f"lxd-profile {self.lxd_profile!r} is not a valid LXD profile name")
        self.mappings  # noqa: B018 - parse now, so a bad fan-config fails loading

    @functools.cached_property
    def mappings(self) -> list[fan.Mapping]:
        return fan.parse_fan_config(self.fan_config)

    @property
    def options(self) -> plan.Options:
        return plan.Options(self.dhcp, self.host_reserve, self.mtu, self.direct_routing)


class FanNetworkingCharm(ops.CharmBase):
    """Reconciles the machine's fan on every event; tears down exactly what it made on removal."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.machine = Machine(MACHINE_ROOT)
        self.fan_provider = FanProvider(self, relation_name=FAN_RELATION)
        self._status: ops.StatusBase | None = None
        on = self.on
        for event in (
            on.install,
            on.start,
            on.config_changed,
            on.upgrade_charm,
            on.update_status,
            on.leader_elected,
            on[PEERS].relation_joined,
            on[PEERS].relation_changed,
            on[PEERS].relation_departed,
            on["juju-info"].relation_joined,
            on["juju-info"].relation_changed,
            on[FAN_RELATION].relation_joined,
            on[FAN_RELATION].relation_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(on.stop, self._teardown)
        framework.observe(on.remove, self._teardown)
        framework.observe(on.collect_unit_status, self._on_collect_status)
        framework.observe(on.show_action, self._on_show)
        framework.observe(on.check_connectivity_action, self._on_check_connectivity)

    # -- reconcile --------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        # A peer coming, changing or going can only change peer entries: the data plane may
        # apply just those (every other hook reads the kernel and repairs any drift).
        peers_only = isinstance(event, ops.RelationEvent) and event.relation.name == PEERS
        try:
            self._status = self._converge(peers_only)
        except OSError as e:
            # The charm's own records (ownership, caches) could not be written, e.g. on a full
            # or read-only disk: say so in the status rather than fail the hook with a traceback.
            logger.error("could not write this machine's files: %s", e)
            self._status = ops.BlockedStatus(
                f"could not write this machine's files: {e} (retried on every hook)"
            )

    def _converge(self, peers_only: bool = False) -> ops.StatusBase:
        """Bring the machine to the planned fan; the returned status says how that went."""
        owner = self._machine_owner()
        if owner != self.unit.name:
            # Claim the owner's addresses too (peers count one machine once), so that peers
            # keep their routes to this machine when ownership moves here.
            dataplane, fans = read_applied(self.machine)
            self._publish_peer_data(owner_addresses=sorted({str(f.address.ip) for f in fans}))
            self._publish_fans(fans, dataplane)
            return ops.ActiveStatus(f"{owner} configures the fan on this machine")
        try:
            config = self.load_config(CharmConfig, errors="raise")
        except ValueError as e:
            # Bad input changes nothing: a running fan keeps running.
            return ops.BlockedStatus(f"invalid config: {readable(str(e))}; e.g. {self._example()}")
        self._publish_peer_data(owner_addresses=None)
        peers = self._peers()  # parsed once: with thousands of peers it is a hook's biggest read
        dataplane = self._dataplane(config, peers)
        if self.unit.is_leader() and dataplane is not None:  # never None for the leader
            self._publish_dataplane(dataplane)
        if not config.mappings:
            FanHost(self.machine).teardown()
            return ops.BlockedStatus(f"fan-config is empty: set it, e.g. {self._example()}")
        if dataplane is None:
            return ops.WaitingStatus("waiting for the leader to choose the data plane")
        if dataplane == "ubuntu-fan" and not self.machine.fan_kernel:
            return ops.BlockedStatus(
                "dataplane=ubuntu-fan needs a kernel with FAN support (no /proc/sys/net/fan): "
                "set dataplane=vxlan or auto"
            )
        try:
            fans = plan.build_plan(
                config.mappings,
                self._candidate_addresses(config.mappings),
                peers,
                config.options,
                self._machine_id(),
            )
        except plan.PlanError as e:
            return ops.BlockedStatus(str(e))
        except CommandError as e:
            return ops.BlockedStatus(f"could not read this machine's addresses: {e}")
        _log_strangers(peers, config.mappings)
        self._publish_peer_data(owner_addresses=sorted({str(f.address.ip) for f in fans}))
        try:
            self._apply(dataplane, fans, config, peers_only)
        except plan.PlanError as e:
            return ops.BlockedStatus(str(e))
        except (ApplyError, CommandError, OSError) as e:
            logger.error("could not apply the fan: %s", e)
            return ops.BlockedStatus(f"could not apply the fan: {e} (retried on every hook)")
        self._publish_fans(fans, dataplane)
        return ops.ActiveStatus(describe(fans, dataplane))

    def _apply(
        self, dataplane: str, fans: list[plan.LocalFan], config: CharmConfig, peers_only: bool
    ) -> None:
        lxd_profile = config.lxd_profile if config.lxd else None
        changes = FanHost(self.machine).apply(dataplane, fans, lxd_profile, peers_only)
        if changes:
            logger.info("applied %d changes with %s: %s", len(changes), dataplane, changes[:20])

    def _teardown(self, _: ops.EventBase) -> None:
        """Remove what this unit made, unless another unit of the charm takes the machine over."""
        if self._machine_owner() != self.unit.name:
            return
        successor = next(iter(self._live_colocated_units()), None)
        if successor is not None:
            self._write_owner(successor, departed=self.unit.name)
            logger.info("handing this machine's fan over to %s", successor)
            return
        FanHost(self.machine).teardown()
        for path in (OWNER_FILE, f"{STATE_DIR}/rendered.json", FAN_KERNEL_CACHE):
            self.machine.remove(path)
        for directory in (STATE_DIR, str(Path(FAN_KERNEL_CACHE).parent)):
            try:
                self.machine.path(directory).rmdir()
            except OSError:
                pass  # not empty (something else of ours still needs it) or never made

    # -- machine ownership (two principals, one machine) -------------------------------

    def _machine_owner(self) -> str:
        """The unit of this charm that configures this machine; claims it if nobody live does."""
        record = self._read_owner()
        owner = record.get("owner")
        if isinstance(owner, str) and (owner == self.unit.name or self._agent_dir(owner).exists()):
            return owner
        self._write_owner(self.unit.name, departed=None)
        return self.unit.name

    def _live_colocated_units(self) -> list[str]:
        """Other units of this application on this machine, that are not on their way out."""
        departed = set(self._read_owner().get("departed", []))
        prefix = f"unit-{self.app.name}-"
        agents = self.machine.path(AGENTS_DIR)
        found = []
        for entry in sorted(agents.glob(f"{prefix}*")) if agents.exists() else []:
            number = entry.name.removeprefix(prefix)
            unit = f"{self.app.name}/{number}"
            if number.isdigit() and unit != self.unit.name and unit not in departed:
                found.append(unit)
        return sorted(found, key=lambda u: int(u.rsplit("/", 1)[1]))

    def _agent_dir(self, unit: str) -> Path:
        return self.machine.path(f"{AGENTS_DIR}/unit-{unit.replace('/', '-')}")

    def _read_owner(self) -> dict[str, Any]:
        try:
            record = json.loads(self.machine.read_text(OWNER_FILE) or "{}")
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def _write_owner(self, owner: str, departed: str | None) -> None:
        record = self._read_owner()
        gone = set(record.get("departed", [])) | ({departed} if departed else set())
        self.machine.write_text(
            OWNER_FILE, json.dumps({"owner": owner, "departed": sorted(gone - {owner})}) + "\n"
        )

    # -- inputs -----------------------------------------------------------------------

    def _machine_id(self) -> str | None:
        return os.environ.get("JUJU_MACHINE_ID")

    def _example(self) -> str:
        return f"juju config {self.app.name} fan-config={fan.EXAMPLE}"

    def _candidate_addresses(self, mappings: list[fan.Mapping]) -> list[HostAddress]:
        """The binding's IPv4 addresses first, then the host's; never one inside an overlay."""
        host = [a for a in self.machine.addresses() if not any(a.interface.ip in m.overlay for m in mappings)]
        known = {a.interface.ip: a for a in host}
        binding = []
        try:
            interfaces = self.model.get_binding("juju-info").network.interfaces  # type: ignore[union-attr]
        except (ops.ModelError, AttributeError) as e:
            logger.info("no juju-info binding addresses: %s", e)
            interfaces = []
        for iface in interfaces:
            if not isinstance(iface.address, ipaddress.IPv4Address) or iface.subnet is None:
                continue
            on_host = known.get(iface.address)
            binding.append(
                HostAddress(
                    ipaddress.IPv4Interface(f"{iface.address}/{iface.subnet.prefixlen}"),
                    on_host.ifname if on_host else iface.name or None,
                    on_host.mtu if on_host else None,
                )
            )
        return binding + host

    def _peers(self) -> list[plan.PeerInfo]:
        relation = self.model.get_relation(PEERS)
        if relation is None:
            return []
        return [plan.PeerInfo.from_databag(unit.name, relation.data[unit]) for unit in relation.units]

    def _dataplane(self, config: CharmConfig, peers: list[plan.PeerInfo]) -> str | None:
        """The data plane this unit follows: the configured one, or `auto`'s choice.

        The leader makes that choice here, from every unit's kernel; the others follow it.
        """
        if config.dataplane != "auto":
            return config.dataplane
        if self.unit.is_leader():
            kernels = [self.machine.fan_kernel] + [p.fan_kernel for p in peers]
            return plan.choose_dataplane(config.dataplane, kernels, self._published_dataplane())
        if not self.machine.fan_kernel:
            return "vxlan"  # whatever the leader says, this kernel cannot carry classic FAN
        return self._published_dataplane()

    def _published_dataplane(self) -> str | None:
        relation = self.model.get_relation(PEERS)
        raw = relation.data[self.app].get("dataplane") if relation else None
        if raw is None:
            return None
        try:
            published = json.loads(raw)
        except (ValueError, RecursionError):  # a deeply nested value exhausts the parser
            published = None
        if isinstance(published, str) and published in ("ubuntu-fan", "vxlan"):
            return published
        logger.warning("ignoring the published dataplane %.60r: not ubuntu-fan or vxlan", raw)
        return None

    # -- outputs ----------------------------------------------------------------------

    def _publish_peer_data(self, owner_addresses: list[str] | None) -> None:
        relation = self.model.get_relation(PEERS)
        if relation is None:
            return
        data = {"fan-kernel": json.dumps(self.machine.fan_kernel)}
        if machine := self._machine_id():
            data["machine"] = json.dumps(machine)
        if owner_addresses is not None:
            data["underlay-addresses"] = json.dumps(owner_addresses)
        _update(relation.data[self.unit], data)

    def _publish_dataplane(self, dataplane: str) -> None:
        relation = self.model.get_relation(PEERS)
        if relation is not None:
            _update(relation.data[self.app], {"dataplane": json.dumps(dataplane)})

    def _publish_fans(self, fans: list[plan.LocalFan], dataplane: str | None) -> None:
        self.fan_provider.publish([fan_info(f, dataplane or "") for f in fans])

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        if self._status is not None:
            event.add_status(self._status)

    # -- actions ----------------------------------------------------------------------

    def _on_show(self, event: ops.ActionEvent) -> None:
        dataplane, fans = read_applied(self.machine)
        results: dict[str, Any] = {
            "owner": self._machine_owner(),
            "dataplane": dataplane or "none",
            "fans": json.dumps([fan_info(f, dataplane or "").to_dict() for f in fans], indent=1),
            "peers": json.dumps(
                [
                    {"unit": p.unit, "underlay": str(p.underlay), "segment": str(p.segment)}
                    for f in fans
                    for p in f.peers
                ],
                indent=1,
            ),
        }
        try:
            results.update({k: json.dumps(v, indent=1) for k, v in FanHost(self.machine).state().items()})
        except (ApplyError, CommandError) as e:
            results["error"] = f"could not read the machine's state: {e}"
        event.set_results(results)

    def _on_check_connectivity(self, event: ops.ActionEvent) -> None:
        from connectivity import probe_peers, render_table

        _, fans = read_applied(self.machine)
        if not fans:
            event.fail("this unit carries no fan yet: see `juju status` for why")
            return
        count = int(event.params.get("count", 3))
        rows = probe_peers(self.machine, fans, count)
        table = render_table(rows)
        event.set_results({"table": table, "peers": json.dumps([r.as_dict() for r in rows], indent=1)})
        unreachable = [r.unit for r in rows if not r.reachable]
        if unreachable:
            event.fail(f"unreachable over the overlay: {', '.join(unreachable)}\n{table}")


def fan_info(local: plan.LocalFan, dataplane: str) -> FanInfo:
    """This machine's fan as the `fan` relation publishes it to application charms."""
    return FanInfo(
        underlay=local.mapping.underlay,
        overlay=local.mapping.overlay,
        segment=local.segment,
        gateway=local.gateway,
        bridge=local.bridge,
        mtu=local.mtu,
        dataplane=dataplane,
    )


def describe(fans: list[plan.LocalFan], dataplane: str) -> str:
    """The Active message, e.g. `fan 250.3.4.0/24 on fan-250 (vxlan, mtu 1450, 5 peers)`."""
    where = ", ".join(f"{f.segment} on {f.bridge}" for f in fans)
    mtus = "/".join(sorted({str(f.mtu) for f in fans}))
    detail = f"{dataplane}, mtu {mtus}"
    if dataplane == "vxlan":
        hosts = {p.underlay for f in fans for p in f.peers}
        detail += f", {len(hosts)} peer{'s' if len(hosts) != 1 else ''}"
    return f"{'fans' if len(fans) > 1 else 'fan'} {where} ({detail})"


def readable(text: str, word_limit: int = 80) -> str:
    """`text` fit for a status message: invisible characters escaped, very long words cut.

    Operators paste config from documents and terminals; a zero-width space or an escape
    sequence must show in the message that blames it, and a pasted file must not flood it.
    """
    visible = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return " ".join(
        word if len(word) <= word_limit else f"{word[: word_limit - 20]}...({len(word)} characters)"
        for word in visible.split(" ")
    )


def _log_strangers(peers: list[plan.PeerInfo], mappings: list[fan.Mapping]) -> None:
    """Warn about peers whose addresses lie in no underlay: nothing is built from them."""
    for peer in peers:
        if peer.addresses and not any(a in m.underlay for a in peer.addresses for m in mappings):
            logger.warning(
                "ignoring %s: none of its underlay addresses (%s) is in an underlay of fan-config",
                peer.unit,
                ", ".join(str(a) for a in peer.addresses[:4]) + (", ..." if len(peer.addresses) > 4 else ""),
            )


def _update(databag: ops.RelationDataContent, values: dict[str, str]) -> None:
    """Write only the keys that changed, so an unchanged hook triggers no relation-changed."""
    for key, value in values.items():
        if databag.get(key) != value:
            databag[key] = value


if __name__ == "__main__":  # pragma: nocover
    ops.main(FanNetworkingCharm)
