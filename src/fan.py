"""FAN addressing: Juju's `fan-config` syntax and the overlay arithmetic.

Pure: no I/O and no ops, so the charm, every data plane and the acceptance checks share
one definition of "which slice of the overlay does this host own".

For a mapping ``U/u=O/o`` and a host ``h`` in ``U/u``, the host's segment is
``O + ((h & ~maskU) << (u - o))`` with prefix ``o + 32 - u``: the host bits of ``h`` land
directly below the overlay prefix (host 10.0.3.4 in 10.0.0.0/16=250.0.0.0/8 owns
250.3.4.0/24). Juju shifts bits, not bytes, so prefixes that are not multiples of 8 work.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Iterable

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

EXAMPLE = "10.0.0.0/16=250.0.0.0/8"

# The largest per-host segment prefix that still leaves the host an address and room
# for at least one container (network, gateway, one address, broadcast).
MAX_SEGMENT_PREFIXLEN = 30

# Overlays the kernel will not route as unicast: "this network", loopback, multicast.
_UNROUTABLE = tuple(ipaddress.IPv4Network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4"))

_MAX_IFNAME = 15  # IFNAMSIZ - 1
_CIDR = re.compile(r"^[^/\s]+/[0-9]+$", re.ASCII)


class FanConfigError(ValueError):
    """A `fan-config` that cannot work; the message names the entry and says why."""


@dataclasses.dataclass(frozen=True)
class Mapping:
    """One `<underlay>=<overlay>` entry. Host bits are masked off, as Juju does."""

    underlay: IPv4Network
    overlay: IPv4Network

    def __post_init__(self) -> None:
        # Accept strings and networks alike; store canonical IPv4 networks.
        for field in ("underlay", "overlay"):
            value = getattr(self, field)
            if not isinstance(value, ipaddress.IPv4Network):
                value = _parse_cidr(str(value), entry=f"{self.underlay}={self.overlay}")
                object.__setattr__(self, field, value)
        _check_mapping(self)

    def __str__(self) -> str:
        return f"{self.underlay}={self.overlay}"

    @property
    def segment_prefixlen(self) -> int:
        """Prefix length of every host's segment of the overlay."""
        return self.overlay.prefixlen + 32 - self.underlay.prefixlen


def parse_fan_config(text: str) -> list[Mapping]:
    """Parse Juju's `fan-config` syntax: `<underlay>=<overlay>` entries separated by whitespace.

    Accepts everything Juju accepts, with the same meaning; whitespace between entries
    (and around `=`) is lenient. "" or whitespace gives []. Raises FanConfigError for
    anything that cannot work, naming the offending entry.
    """
    entries = re.sub(r"\s*=\s*", "=", text).split()
    mappings = [_parse_entry(entry) for entry in entries]
    _check_overlaps(mappings)
    return mappings


def format_fan_config(mappings: Iterable[Mapping]) -> str:
    """The canonical `fan-config` text; round-trips `parse_fan_config`."""
    return " ".join(str(m) for m in mappings)


def overlay_segment(
    mapping: Mapping,
    subnet: str | IPv4Network | ipaddress.IPv6Network | ipaddress.IPv4Interface | IPv4Address,
) -> IPv4Network | None:
    """Juju's CalculateOverlaySegment: the slice of the overlay that `subnet` maps to.

    None when the subnet is not IPv4, lies outside the underlay, or is larger than it.
    A subnet given as text must be a CIDR (`10.0.3.0/24`); host bits are ignored.
    """
    if isinstance(subnet, str):
        subnet = _parse_subnet(subnet)
    elif isinstance(subnet, ipaddress.IPv4Interface):
        subnet = subnet.network
    elif isinstance(subnet, ipaddress.IPv4Address):
        subnet = ipaddress.IPv4Network((subnet, 32))
    if not isinstance(subnet, ipaddress.IPv4Network):
        return None
    underlay, overlay = mapping.underlay, mapping.overlay
    if subnet.prefixlen < underlay.prefixlen or subnet.network_address not in underlay:
        return None
    host_bits = int(subnet.network_address) & int(underlay.hostmask)
    shifted = (host_bits << (underlay.prefixlen - overlay.prefixlen)) & 0xFFFFFFFF
    prefixlen = overlay.prefixlen + subnet.prefixlen - underlay.prefixlen
    return ipaddress.IPv4Network((int(overlay.network_address) | shifted, prefixlen))


def host_segment(mapping: Mapping, address: str | IPv4Address) -> IPv4Network:
    """The segment owned by the host with underlay `address` (e.g. 250.3.4.0/24)."""
    host = _as_address(address)
    if host is None or host not in mapping.underlay:
        raise FanConfigError(f"{address} is not in the underlay {mapping.underlay} of {mapping}")
    segment = overlay_segment(mapping, ipaddress.IPv4Network((host, 32)))
    assert segment is not None  # the host is inside the underlay
    return segment


def gateway(mapping: Mapping, address: str | IPv4Address) -> IPv4Address:
    """The host's own address in its segment: the first address (250.3.4.1)."""
    return host_segment(mapping, address).network_address + 1


def bridge_name(mapping: Mapping) -> str:
    """`fan-250` for a /8 overlay, `fan-250-10` for 250.10.0.0/16: the prefix octets joined.

    Names longer than an interface name allows (overlays longer than /24 with wide
    octets) become `fan-` and the overlay address in hex, which stays unique.
    """
    overlay = mapping.overlay
    octets = str(overlay.network_address).split(".")[: math.ceil(overlay.prefixlen / 8)]
    name = "fan-" + "-".join(octets)
    if len(name) > _MAX_IFNAME:
        name = f"fan-{int(overlay.network_address):08x}"
    return name


def vxlan_id(mapping: Mapping) -> int:
    """The VXLAN id LXD uses for this overlay: the overlay address >> 8 (24 bits)."""
    return int(mapping.overlay.network_address) >> 8


# -- parsing helpers ---------------------------------------------------------------------


def _parse_entry(entry: str) -> Mapping:
    sides = entry.split("=")
    if len(sides) != 2:
        hint = f"expected <underlay CIDR>=<overlay CIDR>, e.g. {EXAMPLE}"
        if "=" not in entry and ":" in entry and "/" in entry:
            hint = f"the old underlay:overlay form is not supported; {hint}"
        raise FanConfigError(f"invalid FAN config entry: {entry} ({hint})")
    underlay = _parse_cidr(sides[0], entry=entry)
    overlay = _parse_cidr(sides[1], entry=entry)
    return Mapping(underlay, overlay)


def _parse_cidr(text: str, entry: str) -> IPv4Network:
    network = _network_or_none(text)
    if network is None:
        raise FanConfigError(
            f"invalid address in FAN config: invalid CIDR address: {text} (in entry {entry}; "
            f"expected a network like 10.0.0.0/16)"
        )
    if network.version != 4:
        raise FanConfigError(
            f"invalid FAN config, IPv6 is not supported: {entry} (FAN maps IPv4 networks only)"
        )
    return network


def _check_mapping(m: Mapping) -> None:
    u, o = m.underlay, m.overlay
    if u.prefixlen <= o.prefixlen:
        raise FanConfigError(
            f"invalid FAN config, underlay mask must be larger than overlay: {m} "
            f"(the underlay prefix /{u.prefixlen} must be longer than the overlay's /{o.prefixlen})"
        )
    if m.segment_prefixlen > MAX_SEGMENT_PREFIXLEN:
        raise FanConfigError(
            f"invalid FAN config, per-host segments would be /{m.segment_prefixlen}, smaller "
            f"than /{MAX_SEGMENT_PREFIXLEN}: {m} (use a shorter overlay or a longer underlay prefix)"
        )
    if o.overlaps(u):
        raise FanConfigError(f"invalid FAN config, overlay {o} overlaps its underlay: {m}")
    for bad in _UNROUTABLE:
        if o.overlaps(bad):
            raise FanConfigError(
                f"invalid FAN config, overlay {o} overlaps {bad}, which cannot be routed: {m} "
                f"(240.0.0.0/8 to 254.0.0.0/8 make good overlays)"
            )


def _check_overlaps(mappings: list[Mapping]) -> None:
    for i, a in enumerate(mappings):
        for b in mappings[i + 1 :]:
            if a == b:
                raise FanConfigError(f"invalid FAN config, entry listed twice: {a}")
            if a.overlay.overlaps(b.overlay):
                raise FanConfigError(
                    f"invalid FAN config, overlays overlap: {a} and {b} (every overlay needs its own range)"
                )
            for x, y in ((a, b), (b, a)):
                if x.overlay.overlaps(y.underlay):
                    raise FanConfigError(
                        f"invalid FAN config, overlay {x.overlay} of {x} overlaps the underlay of {y}"
                    )
            # Every machine carries every mapping, and the kernel refuses a second VXLAN
            # device with the same id and port; only overlays longer than /24 can collide.
            if vxlan_id(a) == vxlan_id(b):
                raise FanConfigError(
                    f"invalid FAN config, overlays {a.overlay} and {b.overlay} would share VXLAN id "
                    f"{vxlan_id(a)}: {a} and {b} (overlays longer than /24 must differ in their "
                    f"first three octets)"
                )


def _parse_subnet(text: str) -> IPv4Network | ipaddress.IPv6Network:
    network = _network_or_none(text)
    if network is None:
        raise FanConfigError(f"invalid CIDR address: {text}")
    return network


def _network_or_none(text: str) -> IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR with an explicit numeric prefix, as Go's net.ParseCIDR wants; host bits ignored."""
    if not _CIDR.match(text):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _as_address(address: object) -> IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if isinstance(address, ipaddress.IPv4Interface):
        return address.ip
    try:
        value = ipaddress.ip_interface(str(address)).ip
    except ValueError:
        return None
    return value if isinstance(value, ipaddress.IPv4Address) else None
