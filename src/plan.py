"""The fan one machine should have, computed from config, its addresses and its peers.

Pure: the charm gathers the inputs, every data plane applies the result. Peer data comes
from other units and is treated as hostile: anything malformed, outside the underlay, or
claiming a segment someone else claims too is dropped with a warning, so no command is
ever built from it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from collections.abc import Mapping as MappingABC
from typing import Any

import fan
from machine import HostAddress

logger = logging.getLogger(__name__)

VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
DEFAULT_UNDERLAY_MTU = 1500
MIN_MTU = 576  # the smallest datagram every IPv4 host must accept
MAX_PEER_ADDRESSES = 32  # more than any real host has; longer lists are hostile
DATAPLANES = ("auto", "ubuntu-fan", "vxlan")
_MACHINE_ID = re.compile(r"[0-9]+(/[a-z]+/[0-9]+)*", re.ASCII)  # fullmatch: `$` takes "4\n"


class PlanError(Exception):
    """The fan cannot be planned as configured; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Options:
    """The charm options that shape every fan."""

    dhcp: bool = True
    host_reserve: int = 1
    mtu: int = 0
    direct_routing: bool = False


@dataclasses.dataclass(frozen=True)
class PeerInfo:
    """What one peer unit says about itself in `fan-peers`, validated."""

    unit: str
    machine: str | None = None
    addresses: tuple[ipaddress.IPv4Address, ...] = ()
    fan_kernel: bool | None = None

    @classmethod
    def from_databag(cls, unit: str, data: MappingABC[str, str]) -> PeerInfo:
        """Parse a peer's unit databag; malformed fields are dropped and logged, never raised."""
        machine = _load(unit, data, "machine")
        if isinstance(machine, int) and not isinstance(machine, bool):
            machine = str(machine)
        if machine is not None and not (isinstance(machine, str) and _MACHINE_ID.fullmatch(machine)):
            logger.warning("ignoring %s's machine %.40r: not a Juju machine id", unit, machine)
            machine = None
        kernel = _load(unit, data, "fan-kernel")
        if kernel is not None and not isinstance(kernel, bool):
            logger.warning("ignoring %s's fan-kernel %.40r: not a boolean", unit, kernel)
            kernel = None
        return cls(unit, machine, _load_addresses(unit, data), kernel)


@dataclasses.dataclass(frozen=True)
class PeerRoute:
    """How to reach one peer's segment of a fan."""

    unit: str
    underlay: ipaddress.IPv4Address
    segment: ipaddress.IPv4Network
    direct: bool = False  # same L2 subnet and direct-routing on: no encapsulation

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.segment.network_address + 1


@dataclasses.dataclass(frozen=True)
class LocalFan:
    """One mapping as this machine carries it."""

    mapping: fan.Mapping
    address: ipaddress.IPv4Interface  # this host's underlay address, with its subnet
    mtu: int
    ifname: str | None = None  # the interface holding `address`
    dhcp: bool = True
    host_reserve: int = 1
    peers: tuple[PeerRoute, ...] = ()

    @property
    def segment(self) -> ipaddress.IPv4Network:
        return fan.host_segment(self.mapping, self.address.ip)

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.segment.network_address + 1

    @property
    def bridge(self) -> str:
        return fan.bridge_name(self.mapping)

    @property
    def vni(self) -> int:
        return fan.vxlan_id(self.mapping)

    @property
    def dhcp_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        """The addresses containers get: after the host-reserved ones, up to the last usable."""
        return self.gateway + self.host_reserve, self.segment.broadcast_address - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "underlay": str(self.mapping.underlay),
            "overlay": str(self.mapping.overlay),
            "address": str(self.address),
            "ifname": self.ifname,
            "mtu": self.mtu,
            "dhcp": self.dhcp,
            "host-reserve": self.host_reserve,
            "peers": [{"unit": p.unit, "underlay": str(p.underlay), "direct": p.direct} for p in self.peers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalFan:
        mapping = fan.Mapping(data["underlay"], data["overlay"])
        peers = tuple(
            PeerRoute(
                p["unit"],
                ipaddress.IPv4Address(p["underlay"]),
                fan.host_segment(mapping, p["underlay"]),
                bool(p["direct"]),
            )
            for p in data["peers"]
        )
        return cls(
            mapping,
            ipaddress.IPv4Interface(data["address"]),
            int(data["mtu"]),
            data["ifname"],
            bool(data["dhcp"]),
            int(data["host-reserve"]),
            peers,
        )


def choose_address(mapping: fan.Mapping, candidates: Iterable[HostAddress]) -> HostAddress | None:
    """The first candidate inside the underlay; /32s (VIPs, floating addresses) never count."""
    for candidate in candidates:
        iface = candidate.interface
        if iface.ip in mapping.underlay and iface.network.prefixlen < 32:
            return candidate
    return None


def build_plan(
    mappings: Sequence[fan.Mapping],
    candidates: Sequence[HostAddress],
    peers: Sequence[PeerInfo],
    options: Options,
    machine: str | None = None,
) -> list[LocalFan]:
    """The fans this machine carries; PlanError says what the operator must fix."""
    fans = []
    for mapping in mappings:
        chosen = choose_address(mapping, candidates)
        if chosen is None:
            raise PlanError(
                f"no address of this machine is in the underlay {mapping.underlay}: "
                f"bind juju-info to a space in it or fix fan-config"
            )
        local = LocalFan(
            mapping,
            chosen.interface,
            _fan_mtu(options.mtu, chosen),
            chosen.ifname,
            options.dhcp,
            options.host_reserve,
        )
        _check_host_reserve(local)
        routes = peer_routes(local, peers, options.direct_routing, machine)
        fans.append(dataclasses.replace(local, peers=routes))
    return fans


def peer_routes(
    local: LocalFan, peers: Sequence[PeerInfo], direct_routing: bool, machine: str | None
) -> tuple[PeerRoute, ...]:
    """A route per peer host of this fan; conflicting claims to one segment are all dropped."""
    # This runs for every peer on every hook, so addresses are compared as integers
    # (ipaddress operators cost microseconds each, which thousands of peers add up).
    underlay, overlay = local.mapping.underlay, local.mapping.overlay
    network, netmask, hostmask = int(underlay.network_address), int(underlay.netmask), int(underlay.hostmask)
    reserved = {network, network | hostmask} if underlay.prefixlen < 31 else set()
    own, own_mask = int(local.address.ip), int(local.address.netmask)
    claims: dict[ipaddress.IPv4Address, list[PeerInfo]] = defaultdict(list)
    for peer in peers:
        if machine is not None and peer.machine == machine:
            continue  # another unit on this machine: not a peer host
        address = next((a for a in peer.addresses if int(a) & netmask == network), None)
        if address is None:
            continue
        if int(address) == own or int(address) in reserved:
            logger.warning("ignoring %s: it claims underlay address %s", peer.unit, address)
            continue
        claims[address].append(peer)
    # fan.host_segment, in integers: the address's host bits just below the overlay prefix.
    shift, prefixlen = underlay.prefixlen - overlay.prefixlen, local.mapping.segment_prefixlen
    routes = []
    for address, claimants in claims.items():
        hosts = {p.machine or p.unit for p in claimants}
        if len(hosts) > 1:
            logger.warning(
                "ignoring %s: they all claim underlay address %s",
                ", ".join(sorted(p.unit for p in claimants)),
                address,
            )
            continue
        unit = min(p.unit for p in claimants)
        direct = direct_routing and int(address) & own_mask == own & own_mask
        segment = int(overlay.network_address) | ((int(address) & hostmask) << shift & 0xFFFFFFFF)
        routes.append(
            (segment, PeerRoute(unit, address, ipaddress.IPv4Network((segment, prefixlen)), direct))
        )
    return tuple(route for _, route in sorted(routes, key=lambda r: r[0]))


def choose_dataplane(configured: str, kernels: Iterable[bool | None], published: str | None = None) -> str:
    """The leader's choice: `ubuntu-fan` under `auto` only if every reporting unit has FAN.

    Once `auto` chose vxlan it stays: vxlan works on every kernel, and every switch
    disturbs every container, so a unit without FAN leaving is no reason to switch back.
    """
    if configured != "auto":
        return configured
    if published == "vxlan":
        return "vxlan"
    reported = [k for k in kernels if k is not None]
    return "ubuntu-fan" if reported and all(reported) else "vxlan"


def _fan_mtu(configured: int, underlay: HostAddress) -> int:
    limit = (underlay.mtu or DEFAULT_UNDERLAY_MTU) - VXLAN_OVERHEAD
    if configured == 0:
        return limit
    if not MIN_MTU <= configured <= limit:
        on = f" on {underlay.ifname}" if underlay.ifname else ""
        raise PlanError(
            f"mtu {configured} is outside {MIN_MTU}..{limit}, what the underlay{on} allows: "
            f"set mtu=0 (automatic) or a value in that range"
        )
    return configured


def _check_host_reserve(local: LocalFan) -> None:
    most = local.segment.num_addresses - 3  # network, broadcast, and one container
    if not 1 <= local.host_reserve <= most:
        raise PlanError(
            f"host-reserve {local.host_reserve} does not fit segment {local.segment}: use 1 to {most}"
        )


def _load(unit: str, data: MappingABC[str, str], key: str) -> Any:
    raw = data.get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError, RecursionError):  # deeply nested JSON exhausts the parser
        logger.warning("ignoring %s's %s: not JSON", unit, key)
        return None


def _load_addresses(unit: str, data: MappingABC[str, str]) -> tuple[ipaddress.IPv4Address, ...]:
    raw = _load(unit, data, "underlay-addresses")
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_PEER_ADDRESSES:
        logger.warning("ignoring %s's underlay-addresses: not a list of at most %d", unit, MAX_PEER_ADDRESSES)
        return ()
    addresses = []
    for value in raw:
        try:
            addresses.append(ipaddress.IPv4Address(value if isinstance(value, str) else ""))
        except ValueError:
            logger.warning("ignoring %s's underlay address %.40r: not IPv4", unit, value)
    return tuple(addresses)
