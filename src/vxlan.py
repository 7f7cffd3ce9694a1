"""The `vxlan` data plane: FAN addressing on any kernel, carried by plain Linux VXLAN.

Per fan: a bridge (`fan-250`) holding the gateway with the segment prefix, and a VXLAN
device (`vx-250`: VNI = overlay >> 8, UDP 8472, no learning, local = underlay address, a
MAC derived from that address). Per peer: a route to its segment through the VXLAN
device, a neighbour entry for its gateway and an FDB entry pointing at its underlay
address; peers compute the same MACs, so nothing but underlay addresses is exchanged.

Every apply reads what the kernel holds, computes the difference and writes it in at most
three batches (`ip -batch`, `bridge -batch`, `ip -batch`), so a peer joining changes only
that peer's entries and an unchanged state runs no mutating command. What this plane
owns is marked in the kernel itself (link alias, route protocol), so teardown needs no
bookkeeping that could be lost.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from charmlibs import systemd

from dataplane import ApplyError
from machine import CommandError, Machine, check_result, parse_json, render, template_key
from plan import LocalFan

logger = logging.getLogger(__name__)

UDP_PORT = 8472  # what Ubuntu FAN's `dstport 0` means, so FAN firewall rules keep working
LINK_ALIAS = "fan-networking"  # marks links this plane created or adopted
ROUTE_PROTO = "250"  # marks routes and nexthops this plane owns (unused by routing daemons)
NAT_TABLE = "fan_networking"
NAT_TEMPLATE = "nat.nft.j2"
SYSCTL_NAME = "fan-networking"
BOOT_SERVICE = "fan-networking.service"
UNIT_FILE = f"/etc/systemd/system/{BOOT_SERVICE}"
UNIT_WANTS = f"/etc/systemd/system/multi-user.target.wants/{BOOT_SERVICE}"
_NAT_DIGEST = re.compile(r'comment "fan-networking ([0-9a-f]+)"')


def vxlan_device(fan: LocalFan) -> str:
    """`vx-250` for bridge `fan-250`. Not `fan-250-*`: LXD deletes such ports of its bridges."""
    return "vx-" + fan.bridge.removeprefix("fan-")


def vtep_mac(address: ipaddress.IPv4Address | int) -> str:
    """A locally administered MAC derived from an underlay address: 02:fa:0a:00:03:04."""
    n = int(address)
    return f"02:fa:{n >> 24:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"


def _dotted(n: int) -> str:
    """str(IPv4Address(n)) at a third of the cost: it runs for every peer on every hook."""
    return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


Route = tuple[str, str | None, int | None]  # via, dev, nexthop id


@dataclasses.dataclass(frozen=True)
class Link:
    """The attributes of a bridge or VXLAN device this plane compares."""

    name: str
    kind: str  # "bridge" or "vxlan"
    mtu: int
    addresses: frozenset[str] = frozenset()  # IPv4 "a.b.c.d/p"
    mac: str | None = None  # only compared for VXLAN devices
    vxlan: tuple[int, int, str, bool] | None = None  # (id, port, local, learning)
    alias: str | None = LINK_ALIAS
    up: bool = True


@dataclasses.dataclass
class KernelState:
    """Links, per-peer entries and NAT: desired (from the plan) or observed (from the kernel)."""

    links: dict[str, Link] = dataclasses.field(default_factory=dict)
    # dst: (via, dev, nexthop id). Every route goes through a nexthop object whose id is
    # the segment's address: inserting thousands of `via ... dev vx` routes directly is
    # quadratic in the kernel (0.4 s for 5,000), through nexthops it is linear.
    routes: dict[str, Route] = dataclasses.field(default_factory=dict)
    nexthops: dict[int, tuple[str, str | None]] = dataclasses.field(default_factory=dict)  # id: (via, dev)
    neighbours: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)  # (dev, ip): mac
    fdb: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)  # (dev, mac): underlay
    nat_rules: tuple[tuple[str, str, str], ...] = ()  # (segment, overlay, bridge) to masquerade
    nat_digest: str | None = None


@dataclasses.dataclass
class Batches:
    """The commands that turn the observed state into the desired one, in apply order."""

    links: list[str] = dataclasses.field(default_factory=list)  # ip -batch
    fdb: list[str] = dataclasses.field(default_factory=list)  # bridge -batch
    peers: list[str] = dataclasses.field(default_factory=list)  # ip -batch: neighbours, routes
    nat: str | None = None  # nft -f ruleset, "" to delete the table

    def __len__(self) -> int:
        return len(self.links) + len(self.fdb) + len(self.peers) + (self.nat is not None)


def desired_state(fans: Sequence[LocalFan]) -> KernelState:
    """The kernel state that carries `fans`."""
    state = KernelState()
    for fan in fans:
        device = vxlan_device(fan)
        state.links[fan.bridge] = Link(
            fan.bridge, "bridge", fan.mtu, frozenset({f"{fan.gateway}/{fan.segment.prefixlen}"})
        )
        state.links[device] = Link(
            device,
            "vxlan",
            fan.mtu,
            mac=vtep_mac(fan.address.ip),
            vxlan=(fan.vni, UDP_PORT, str(fan.address.ip), False),
        )
        # Per peer, strings are made from integers: ipaddress objects cost ~10x more, and
        # with thousands of peers this loop runs on every hook.
        for peer in fan.peers:
            segment, underlay = int(peer.segment.network_address), int(peer.underlay)
            dst = f"{_dotted(segment)}/{peer.segment.prefixlen}"
            if peer.direct and fan.ifname:
                state.routes[dst] = (_dotted(underlay), fan.ifname, segment)
                state.nexthops[segment] = (_dotted(underlay), fan.ifname)
                continue
            mac, gateway = vtep_mac(underlay), _dotted(segment + 1)
            state.routes[dst] = (gateway, device, segment)
            state.nexthops[segment] = (gateway, device)
            state.neighbours[(device, gateway)] = mac
            state.fdb[(device, mac)] = _dotted(underlay)
    if fans:
        # Masquerade what leaves each overlay; traffic between segments keeps its source.
        state.nat_rules = tuple((str(f.segment), str(f.mapping.overlay), f.bridge) for f in fans)
        state.nat_digest = template_key(NAT_TEMPLATE, table=NAT_TABLE, rules=state.nat_rules)
    return state


def peer_changes(applied: Sequence[LocalFan], fans: Sequence[LocalFan]) -> Batches | None:
    """The batches for just the peers that changed since `applied`, or None if more changed.

    Diffing the departed peers' entries against the new peers' needs no kernel dump, which
    with thousands of peers is most of an apply's cost.
    """
    if [dataclasses.replace(f, peers=()) for f in applied] != [
        dataclasses.replace(f, peers=()) for f in fans
    ]:
        return None
    gone, came = [], []
    for old, new in zip(applied, fans, strict=True):
        # Keyed by plain values: hashing thousands of PeerRoutes (ipaddress inside) is slow,
        # and with the mapping equal, (unit, underlay, direct) determines a peer's entries.
        before = {(p.unit, int(p.underlay), p.direct): p for p in old.peers}
        after = {(p.unit, int(p.underlay), p.direct): p for p in new.peers}
        gone.append(dataclasses.replace(old, peers=tuple(p for k, p in before.items() if k not in after)))
        came.append(dataclasses.replace(new, peers=tuple(p for k, p in after.items() if k not in before)))
    return diff(desired_state(came), desired_state(gone))


def diff(desired: KernelState, observed: KernelState) -> Batches:
    """The batches that turn `observed` into `desired`, touching nothing that already matches."""
    batches = Batches()
    gone: set[str] = set()  # links deleted or recreated: their entries vanish with them
    for name, link in observed.links.items():
        if name not in desired.links and link.alias == LINK_ALIAS:
            batches.links.append(f"link del dev {name}")
            gone.add(name)
    for name, want in desired.links.items():
        have = observed.links.get(name)
        if have is not None and have.kind != want.kind:
            if have.alias != LINK_ALIAS:
                raise ApplyError(f"{name} exists and is a {have.kind or 'plain'} link, not a {want.kind}")
            batches.links.append(f"link del dev {name}")
            have = None
        if have is not None and want.vxlan is not None and have.vxlan != want.vxlan:
            batches.links.append(f"link del dev {name}")  # id, port or local changed: recreate
            have = None
        created = have is None
        if have is None:
            gone.add(name)
            batches.links.append(_link_add(want))
            have = Link(name, want.kind, want.mtu, mac=want.mac, vxlan=want.vxlan, alias=None, up=False)
        batches.links.extend(_link_changes(want, have, created))
    routes, nexthops = observed.routes, observed.nexthops
    neighbours, fdb = observed.neighbours, observed.fdb
    if gone:
        routes = {d: r for d, r in routes.items() if r[1] not in gone}
        nexthops = {i: n for i, n in nexthops.items() if n[1] not in gone}
        neighbours = {k: v for k, v in neighbours.items() if k[0] not in gone}
        fdb = {k: v for k, v in fdb.items() if k[0] not in gone}

    # Removals first, so a segment that moves to another peer never has two routes.
    for dst in routes.keys() - desired.routes.keys():
        batches.peers.append(f"route del {dst} proto {ROUTE_PROTO}")
    for nhid in nexthops.keys() - desired.nexthops.keys():
        batches.peers.append(f"nexthop del id {nhid}")
    for dev, ip in neighbours.keys() - desired.neighbours.keys():
        batches.peers.append(f"neigh del {ip} dev {dev}")
    for (dev, mac), dst in fdb.items():
        if (dev, mac) not in desired.fdb:
            batches.fdb.append(f"fdb del {mac} dev {dev} dst {dst} self")
    # Then additions: FDB before neighbours and routes, so no packet finds a route
    # whose tunnel endpoint is unknown.
    for (dev, mac), dst in desired.fdb.items():
        if fdb.get((dev, mac)) != dst:
            batches.fdb.append(f"fdb replace {mac} dev {dev} dst {dst} self permanent")
    for (dev, ip), mac in desired.neighbours.items():
        if neighbours.get((dev, ip)) != mac:
            batches.peers.append(f"neigh replace {ip} lladdr {mac} dev {dev} nud permanent")
    for nhid, (via, dev) in desired.nexthops.items():
        if nexthops.get(nhid) != (via, dev):
            onlink = " onlink" if dev in desired.links else ""  # the tunnel has no subnet
            batches.peers.append(f"nexthop replace id {nhid} via {via} dev {dev}{onlink} proto {ROUTE_PROTO}")
    for dst, route in desired.routes.items():
        if routes.get(dst) != route:
            batches.peers.append(f"route replace {dst} nhid {route[2]} proto {ROUTE_PROTO}")

    if desired.nat_digest != observed.nat_digest:
        batches.nat = ""
        if desired.nat_rules:
            batches.nat = render(
                NAT_TEMPLATE, table=NAT_TABLE, rules=desired.nat_rules, digest=desired.nat_digest
            )
    return batches


class VxlanPlane:
    """FAN on any kernel: VXLAN programmed from the plan's peers."""

    name = "vxlan"

    def __init__(self, machine: Machine):
        self.machine = machine

    def prepare(self) -> None:
        if shutil.which("nft") is None:
            self.machine.install_package("nftables")

    def apply(self, fans: Sequence[LocalFan], since: Sequence[LocalFan] | None = None) -> list[str]:
        changes = None
        batches = peer_changes(since, fans) if since is not None else None
        if batches is not None:
            try:
                changes = self._run(batches) + self._ensure_forwarding()
            except ApplyError as e:  # the kernel is not what was recorded: read it
                logger.warning("applying only the peers' changes failed, reading the kernel: %s", e)
        if changes is None:
            changes = self.apply_kernel(fans)
        return changes + self._ensure_boot()

    def apply_kernel(self, fans: Sequence[LocalFan]) -> list[str]:
        """Converge the kernel alone (what the boot service does)."""
        desired = desired_state(fans)
        observed = self.read_kernel(desired.links)
        return self._run(diff(desired, observed)) + self._ensure_forwarding()

    def teardown(self) -> list[str]:
        observed = self.read_kernel({})
        changes = self._run(diff(KernelState(), observed))
        changes += self._remove_boot()
        return changes

    def kernel_state(self) -> dict[str, Any]:
        observed = self.read_kernel({})
        return {
            "links": {
                name: {"kind": link.kind, "mtu": link.mtu, "up": link.up, "addresses": sorted(link.addresses)}
                for name, link in sorted(observed.links.items())
            },
            "routes": {
                dst: {"via": via, "dev": dev} for dst, (via, dev, _) in sorted(observed.routes.items())
            },
            "neighbours": len(observed.neighbours),
            "fdb-entries": len(observed.fdb),
            "nat": "installed" if observed.nat_digest else "absent",
        }

    # -- reading the kernel -------------------------------------------------------------

    def read_kernel(self, wanted: Mapping[str, Link]) -> KernelState:
        """What the kernel holds of this plane: links we own or want, and their entries."""
        state = KernelState()
        # All tables are dumped at once (each takes `ip` ~15 ms with thousands of peers),
        # including the FDB of every VXLAN device we want; one we own but no longer want
        # is found in the link dump and read after it.
        wanted_devices = sorted(n for n, link in wanted.items() if link.kind == "vxlan")
        addrs, routes, nexthops, neighbours, nat, *fdbs = self.machine.run_all(
            [
                ["ip", "-j", "-d", "addr", "show"],
                ["ip", "-j", "-4", "route", "show", "proto", ROUTE_PROTO],
                ["ip", "-j", "nexthop", "show", "proto", ROUTE_PROTO],
                ["ip", "-j", "-4", "neigh", "show", "nud", "permanent"],
                ["nft", "list", "table", "ip", NAT_TABLE],
                *(_fdb_show(device) for device in wanted_devices),
            ],
            check=False,
        )
        for raw in parse_json(check_result(addrs).stdout):
            if raw.get("ifalias") == LINK_ALIAS or raw.get("ifname") in wanted:
                link = _parse_link(raw)
                state.links[link.name] = link
        devices = {n for n, link in state.links.items() if link.kind == "vxlan"}
        fdb_read = dict(zip(wanted_devices, fdbs, strict=True))
        late = sorted(devices - fdb_read.keys())
        fdb_read.update(
            zip(late, self.machine.run_all([_fdb_show(d) for d in late], check=False), strict=True)
        )
        for route in parse_json(check_result(routes).stdout):
            state.routes[route["dst"]] = (route.get("gateway", ""), route.get("dev"), route.get("nhid"))
        for nexthop in parse_json(check_result(nexthops).stdout):
            state.nexthops[nexthop["id"]] = (nexthop.get("gateway", ""), nexthop.get("dev"))
        for entry in parse_json(check_result(neighbours).stdout):
            if entry.get("dev") in devices and "lladdr" in entry:
                state.neighbours[(entry["dev"], entry["dst"])] = entry["lladdr"]
        for device in sorted(devices):
            for entry in parse_json(check_result(fdb_read[device]).stdout):
                if "dst" in entry:
                    state.fdb[(device, entry["mac"])] = entry["dst"]
        state.nat_digest = self._nat_digest(nat)
        return state

    def _nat_digest(self, listing: subprocess.CompletedProcess[str]) -> str | None:
        """The digest in our NAT table's comment, from `nft list table` (None: no table)."""
        if listing.returncode != 0 and "No such file or directory" in (listing.stderr or listing.stdout):
            return None
        try:
            check_result(listing)
        except CommandError as e:
            raise ApplyError(str(e)) from None
        match = _NAT_DIGEST.search(listing.stdout)
        return match.group(1) if match else "unknown"

    # -- writing the kernel -------------------------------------------------------------

    def _run(self, batches: Batches) -> list[str]:
        try:
            if batches.links:
                self.machine.run(["ip", "-batch", "-"], stdin="\n".join(batches.links) + "\n")
            if batches.fdb:
                self.machine.run(["bridge", "-batch", "-"], stdin="\n".join(batches.fdb) + "\n")
            if batches.peers:
                self.machine.run(["ip", "-batch", "-"], stdin="\n".join(batches.peers) + "\n")
            if batches.nat == "":
                self.machine.run(["nft", "delete", "table", "ip", NAT_TABLE])
            elif batches.nat is not None:
                # Create-delete-define in one transaction: the ruleset is replaced atomically.
                script = f"table ip {NAT_TABLE}\ndelete table ip {NAT_TABLE}\n{batches.nat}"
                self.machine.run(["nft", "-f", "-"], stdin=script)
        except CommandError as e:
            raise ApplyError(str(e)) from None
        changes = batches.links + batches.fdb + batches.peers
        if batches.nat is not None:
            changes.append("replaced the NAT table" if batches.nat else "deleted the NAT table")
        return changes

    def _ensure_forwarding(self) -> list[str]:
        from charmlibs import sysctl

        config = self.machine.sysctl(SYSCTL_NAME)
        forwarding = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
        # The file's content is checked too: the library turns forwarding on before it
        # writes the file, so a write that failed (full disk) must not pass for done.
        if forwarding and "net.ipv4.ip_forward=1" in _read(config.charm_filepath):
            return []
        try:
            config.configure({"net.ipv4.ip_forward": "1"})
        except sysctl.Error as e:
            raise ApplyError(f"could not turn on IPv4 forwarding: {e.message}") from None
        return ["net.ipv4.ip_forward=1"]

    def _ensure_boot(self) -> list[str]:
        """A systemd unit that re-applies the recorded fans at boot, before LXD starts."""
        changes = []
        src = Path(__file__).resolve().parent
        try:
            if self.machine.write_rendered(
                UNIT_FILE,
                "fan-networking.service.j2",
                python=sys.executable,
                boot_script=str(src / "boot.py"),
                pythonpath=os.pathsep.join(str(src.parent / d) for d in ("src", "lib", "venv")),
            ):
                changes.append(f"wrote {UNIT_FILE}")
                if not systemd.daemon_reload():
                    raise ApplyError("systemctl daemon-reload failed")
            if not self.machine.path(UNIT_WANTS).exists():
                if not systemd.service_enable(BOOT_SERVICE):
                    raise ApplyError(
                        f"could not enable {BOOT_SERVICE}, so the fan would not return after a reboot"
                    )
                changes.append(f"enabled {BOOT_SERVICE}")
        except OSError as e:
            raise ApplyError(f"could not write the boot unit: {e}") from None
        return changes

    def _remove_boot(self) -> list[str]:
        from charmlibs.sysctl import _sysctl as sysctl_files

        changes = []
        if self.machine.path(UNIT_WANTS).exists() and systemd.service_disable(BOOT_SERVICE):
            changes.append(f"disabled {BOOT_SERVICE}")
        if self.machine.remove(UNIT_FILE):
            changes.append(f"removed {UNIT_FILE}")
        config = self.machine.sysctl(SYSCTL_NAME)
        if config.charm_filepath.exists():
            config.remove()
            changes.append(f"removed {config.charm_filepath}")
            # The merged file is shared by every charm using charmlibs-sysctl: delete it
            # only when no charm's settings are left in it.
            merged = sysctl_files.SYSCTL_FILENAME
            if not any(merged.parent.glob(f"{sysctl_files.CHARM_FILENAME_PREFIX}*")):
                merged.unlink(missing_ok=True)
        return changes


def _parse_link(raw: dict[str, Any]) -> Link:
    info = raw.get("linkinfo", {})
    kind = info.get("info_kind", "")
    data = info.get("info_data", {})
    vxlan = None
    if kind == "vxlan":
        vxlan = (data.get("id"), data.get("port"), data.get("local"), bool(data.get("learning")))
    addresses = frozenset(
        f"{a['local']}/{a['prefixlen']}" for a in raw.get("addr_info", []) if a.get("family") == "inet"
    )
    return Link(
        raw["ifname"],
        kind,
        raw.get("mtu", 0),
        addresses,
        raw.get("address") if kind == "vxlan" else None,
        vxlan,
        raw.get("ifalias"),
        "UP" in raw.get("flags", []),
    )


def _fdb_show(device: str) -> list[str]:
    return ["bridge", "-j", "fdb", "show", "dev", device]


def _link_add(link: Link) -> str:
    if link.kind == "bridge":
        return f"link add name {link.name} mtu {link.mtu} type bridge"
    vni, port, local, _ = link.vxlan or (0, UDP_PORT, "", False)
    return (
        f"link add name {link.name} address {link.mac} mtu {link.mtu} "
        f"type vxlan id {vni} dstport {port} local {local} nolearning"
    )


def _link_changes(want: Link, have: Link, created: bool) -> list[str]:
    commands = []
    settings = []
    if have.mtu != want.mtu:
        settings.append(f"mtu {want.mtu}")
    if want.mac and have.mac != want.mac:
        settings.append(f"address {want.mac}")
    if created:
        # Only what this plane creates is marked as its own (and deleted on teardown); a
        # bridge LXD made is used as it is and stays LXD's.
        settings.append(f"alias {LINK_ALIAS}")
    if not have.up:
        settings.append("up")
    if settings:
        commands.append(f"link set dev {want.name} {' '.join(settings)}")
    for address in sorted(want.addresses - have.addresses):
        commands.append(f"addr replace {address} dev {want.name}")
    for address in sorted(have.addresses - want.addresses):
        commands.append(f"addr del {address} dev {want.name}")
    return commands


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
