"""Table and property tests for src/fan.py, the addressing contract.

Expected values are worked out by hand (the arithmetic is in the comments) or by small
independent re-implementations of Juju's and LXD's published algorithms written here;
nothing expected is computed by the module under test. Sources: juju/juju
core/network/fan.go and fan_test.go, canonical/lxd lxd/network/driver_bridge.go
(fanAddress), and shared/reference/fan.md.
"""

from __future__ import annotations

import ipaddress
import re
import string

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from fan import (
    FanConfigError,
    Mapping,
    bridge_name,
    format_fan_config,
    gateway,
    host_segment,
    overlay_segment,
    parse_fan_config,
    vxlan_id,
)

Net = ipaddress.IPv4Network
Addr = ipaddress.IPv4Address

# database=None: no .hypothesis/ directory is written next to the sources.
PROPERTY = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
# Whole configs cost more to generate; narrow properties need fewer examples.
CONFIG_PROPERTY = settings(PROPERTY, max_examples=150)


def mapping(text: str) -> Mapping:
    """The single mapping a one-entry config text describes."""
    (only,) = parse_fan_config(text)
    return only


def strs(mappings: list[Mapping]) -> list[tuple[str, str]]:
    return [(str(m.underlay), str(m.overlay)) for m in mappings]


# -- parse_fan_config: accepted input ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Juju TestFanConfigParseSingle.
        ("172.31.0.0/16=253.0.0.0/8", [("172.31.0.0/16", "253.0.0.0/8")]),
        # Juju TestFanConfigParseMultiple.
        (
            "172.31.0.0/16=253.0.0.0/8 172.32.0.0/16=254.0.0.0/8",
            [("172.31.0.0/16", "253.0.0.0/8"), ("172.32.0.0/16", "254.0.0.0/8")],
        ),
        # One underlay mapped to several overlays is valid.
        (
            "10.0.0.0/16=250.0.0.0/8 10.0.0.0/16=251.0.0.0/8",
            [("10.0.0.0/16", "250.0.0.0/8"), ("10.0.0.0/16", "251.0.0.0/8")],
        ),
        # Prefixes that are not multiples of 8 (Juju's "funky" entry on its own).
        ("10.0.0.0/12=252.0.0.0/7", [("10.0.0.0/12", "252.0.0.0/7")]),
        ("192.168.0.0/20=250.0.0.0/10", [("192.168.0.0/20", "250.0.0.0/10")]),
        # 252.0.0.0/7 overlaps 253/8; 254.0.0.0/7 (254-255) does not.
        (
            "172.31.0.0/16=253.0.0.0/8 10.0.0.0/12=254.0.0.0/7",
            [("172.31.0.0/16", "253.0.0.0/8"), ("10.0.0.0/12", "254.0.0.0/7")],
        ),
        # Segments of exactly /30 are the smallest allowed: 22 + 32 - 24 = 30.
        ("10.0.0.0/24=250.0.0.0/22", [("10.0.0.0/24", "250.0.0.0/22")]),
        # A /32 underlay (one host) onto a /30 overlay: 30 + 32 - 32 = 30.
        ("10.0.0.7/32=250.0.0.4/30", [("10.0.0.7/32", "250.0.0.4/30")]),
        # LXD's three shapes.
        ("10.0.0.0/16=240.0.0.0/8", [("10.0.0.0/16", "240.0.0.0/8")]),
        ("10.0.3.0/24=240.0.0.0/8", [("10.0.3.0/24", "240.0.0.0/8")]),
        ("10.0.3.0/24=240.7.0.0/16", [("10.0.3.0/24", "240.7.0.0/16")]),
        # Host bits are masked off silently, as Go's net.ParseCIDR does.
        ("10.0.3.4/16=250.1.2.3/8", [("10.0.0.0/16", "250.0.0.0/8")]),
        ("10.2.230.17/12=253.1.1.1/7", [("10.0.0.0/12", "252.0.0.0/7")]),  # 253 & 0xfe = 252
    ],
)
def test_parse_accepts(text: str, expected: list[tuple[str, str]]) -> None:
    assert strs(parse_fan_config(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "172.31.0.0/16=253.0.0.0/8",
        "172.31.0.0/16=253.0.0.0/8 172.32.0.0/16=254.0.0.0/8",
        "10.0.0.0/12=252.0.0.0/7",
        "10.0.0.0/16=250.0.0.0/8 10.0.0.0/16=251.0.0.0/8 192.168.0.0/20=240.0.0.0/10",
    ],
)
def test_canonical_text_round_trips(text: str) -> None:
    # Juju: config.String() == input for canonical input.
    assert format_fan_config(parse_fan_config(text)) == text


def test_format_of_masked_input_is_canonical() -> None:
    assert format_fan_config(parse_fan_config("10.0.3.4/16=250.1.2.3/8")) == "10.0.0.0/16=250.0.0.0/8"


def test_format_of_nothing_is_empty() -> None:
    assert format_fan_config([]) == ""


@pytest.mark.parametrize("text", ["", " ", "   ", "\t", "\n", " \t\r\n "])
def test_empty_config_means_no_fan(text: str) -> None:
    assert parse_fan_config(text) == []


TWO = [("10.0.0.0/16", "250.0.0.0/8"), ("172.16.0.0/16", "251.0.0.0/8")]


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.0/16=250.0.0.0/8 172.16.0.0/16=251.0.0.0/8",
        "10.0.0.0/16=250.0.0.0/8\t172.16.0.0/16=251.0.0.0/8",
        "10.0.0.0/16=250.0.0.0/8\n172.16.0.0/16=251.0.0.0/8\n",
        "10.0.0.0/16=250.0.0.0/8\r\n172.16.0.0/16=251.0.0.0/8\r\n",
        "10.0.0.0/16=250.0.0.0/8  172.16.0.0/16=251.0.0.0/8",
        "  10.0.0.0/16=250.0.0.0/8 172.16.0.0/16=251.0.0.0/8",
        "10.0.0.0/16=250.0.0.0/8 172.16.0.0/16=251.0.0.0/8   ",
        "10.0.0.0/16 = 250.0.0.0/8 172.16.0.0/16=  251.0.0.0/8",
        "10.0.0.0/16\t=\t250.0.0.0/8\n\n\t172.16.0.0/16 =251.0.0.0/8",
    ],
)
def test_whitespace_is_lenient(text: str) -> None:
    assert strs(parse_fan_config(text)) == TWO


def test_mapping_str_and_equality() -> None:
    m = Mapping(Net("10.0.0.0/16"), Net("250.0.0.0/8"))
    assert str(m) == "10.0.0.0/16=250.0.0.0/8"
    assert m == mapping("10.0.0.0/16=250.0.0.0/8")
    assert m != mapping("10.0.0.0/16=251.0.0.0/8")


def test_mapping_accepts_text_and_masks_host_bits() -> None:
    m = Mapping("10.0.3.4/16", "250.1.2.3/8")  # type: ignore[arg-type]
    assert (m.underlay, m.overlay) == (Net("10.0.0.0/16"), Net("250.0.0.0/8"))


def test_mapping_constructor_applies_the_same_rules() -> None:
    with pytest.raises(
        FanConfigError, match=r"^invalid FAN config, underlay mask must be larger than overlay: "
    ):
        Mapping(Net("1.0.0.0/8"), Net("2.0.0.0/16"))


def test_error_is_a_value_error() -> None:
    assert issubclass(FanConfigError, ValueError)
    with pytest.raises(ValueError, match="foobar"):
        parse_fan_config("foobar")


# -- parse_fan_config: rejected input --------------------------------------------------------

ENTRY = "invalid FAN config entry: "
ADDRESS = "invalid address in FAN config: "
MASK = "invalid FAN config, underlay mask must be larger than overlay: "
CONFIG = "invalid FAN config"


@pytest.mark.parametrize(
    ("text", "prefix", "names"),
    [
        # Juju TestFanConfigErrors, same prefixes. The valid first entry does not survive.
        ("172.31.0.0/16=253.0.0.0/8 foobar", ENTRY, ["foobar"]),
        ("172.31.0.0/16=253.0.0.0/8 333.122.142.17/18=1.2.3.0/24", ADDRESS, ["333.122.142.17/18"]),
        ("172.31.0.0/16=253.0.0.0/8 1.2.3.0/24=333.122.142.17/18", ADDRESS, ["333.122.142.17/18"]),
        ("1.0.0.0/8=2.0.0.0/16", MASK, ["1.0.0.0/8=2.0.0.0/16"]),
        # Juju's exact text for the address error.
        ("333.122.142.17/18=1.2.3.0/24", ADDRESS + "invalid CIDR address: 333.122.142.17/18", []),
        # Equal prefixes are rejected too (Juju: underlaySize <= overlaySize).
        ("10.0.0.0/16=250.0.0.0/16", MASK, ["10.0.0.0/16=250.0.0.0/16"]),
        # Not exactly two sides.
        ("10.0.0.0/16", ENTRY, ["10.0.0.0/16"]),
        ("10.0.0.0/16=250.0.0.0/8=251.0.0.0/8", ENTRY, ["10.0.0.0/16=250.0.0.0/8=251.0.0.0/8"]),
        # The pre-2017 colon form.
        ("10.0.0.0/16:250.0.0.0/8", ENTRY, ["10.0.0.0/16:250.0.0.0/8"]),
        # Go's net.ParseCIDR wants an address and a numeric prefix.
        ("10.0.0.0=250.0.0.0/8", ADDRESS, ["10.0.0.0"]),
        ("10.0.0.0/16=250.0.0.0", ADDRESS, ["250.0.0.0"]),
        ("10.0.0.0/33=250.0.0.0/8", ADDRESS, ["10.0.0.0/33"]),
        ("10.0.0.0/16=250.0.0.0/255.0.0.0", ADDRESS, ["250.0.0.0/255.0.0.0"]),
        ("=250.0.0.0/8", ADDRESS, []),
        ("10.0.0/16=250.0.0.0/8", ADDRESS, ["10.0.0/16"]),
        # IPv6: Juju parses it, but FAN cannot map it.
        ("2001:db8::/16=2001:db7::/8", CONFIG, ["2001:db8::/16", "IPv6"]),
        ("10.0.0.0/16=2001:db8::/32", CONFIG, ["2001:db8::/32", "IPv6"]),
        # Juju's own combined test config: 252.0.0.0/7 (252-253) contains 253.0.0.0/8.
        (
            "172.31.0.0/16=253.0.0.0/8 10.0.0.0/12=252.0.0.0/7",
            CONFIG,
            ["172.31.0.0/16=253.0.0.0/8", "10.0.0.0/12=252.0.0.0/7"],
        ),
        # Two underlays onto one overlay; the same entry twice.
        ("10.0.0.0/16=250.0.0.0/8 172.16.0.0/16=250.0.0.0/8", CONFIG, ["250.0.0.0/8"]),
        ("10.0.0.0/16=250.0.0.0/8 10.0.0.0/16=250.0.0.0/8", CONFIG, ["10.0.0.0/16=250.0.0.0/8"]),
        # Overlays that merely overlap (a /16 inside another entry's /8).
        ("10.0.0.0/16=250.0.0.0/8 172.16.0.0/24=250.7.0.0/16", CONFIG, ["250.7.0.0/16"]),
        # An overlay overlapping its own underlay, or another entry's underlay.
        ("10.0.0.0/16=10.0.0.0/8", CONFIG, ["10.0.0.0/16=10.0.0.0/8"]),
        ("10.0.0.0/16=250.0.0.0/8 250.1.0.0/16=251.0.0.0/8", CONFIG, ["250.0.0.0/8", "250.1.0.0/16"]),
        ("250.1.0.0/16=251.0.0.0/8 10.0.0.0/16=250.0.0.0/8", CONFIG, ["250.0.0.0/8", "250.1.0.0/16"]),
        # Per-host segments smaller than /30: 15 + 32 - 16 = 31; 23 + 32 - 24 = 31; 31 + 0 = 31.
        ("10.0.0.0/16=250.0.0.0/15", CONFIG, ["10.0.0.0/16=250.0.0.0/15", "/31"]),
        ("10.0.0.0/24=250.0.0.0/23", CONFIG, ["10.0.0.0/24=250.0.0.0/23", "/31"]),
        ("10.0.0.0/32=250.0.0.0/31", CONFIG, ["/31"]),
        # Overlays the kernel will not route as unicast.
        ("10.0.0.0/16=0.0.0.0/8", CONFIG, ["0.0.0.0/8"]),
        ("10.0.0.0/16=127.0.0.0/8", CONFIG, ["127.0.0.0/8"]),
        ("10.0.0.0/24=127.5.0.0/16", CONFIG, ["127.5.0.0/16"]),
        ("10.0.0.0/16=224.0.0.0/8", CONFIG, ["224.0.0.0/8"]),
        ("10.0.0.0/16=239.0.0.0/8", CONFIG, ["239.0.0.0/8"]),
        ("10.0.0.0/16=224.0.0.0/4", CONFIG, ["224.0.0.0/4"]),
        ("10.0.0.0/16=96.0.0.0/3", CONFIG, ["96.0.0.0/3"]),  # 96-127 holds 127/8
    ],
)
def test_parse_rejects(text: str, prefix: str, names: list[str]) -> None:
    with pytest.raises(FanConfigError) as caught:
        parse_fan_config(text)
    message = str(caught.value)
    assert message.startswith(prefix), message
    for name in names:
        assert name in message, message


# -- host_segment / gateway / overlay_segment: worked examples ------------------------------


@pytest.mark.parametrize(
    ("config", "host", "segment", "gw"),
    [
        # Reference 6(d): 172.16.3.4 & 0.0.255.255 = 0.0.3.4; << (16-8) = 0.3.4.0;
        # + 250.0.0.0 = 250.3.4.0; prefix 8 + 32 - 16 = 24.
        ("172.16.0.0/16=250.0.0.0/8", "172.16.3.4", "250.3.4.0/24", "250.3.4.1"),
        # Reference 6(f) (LXD): 10.0.3.4 -> 0.0.3.4 << 8 = 0.3.4.0 -> 240.3.4.0/24.
        ("10.0.0.0/16=240.0.0.0/8", "10.0.3.4", "240.3.4.0/24", "240.3.4.1"),
        # Low and high end of a /16 underlay: 0.0.0.1 << 8 = 0.0.1.0; 0.0.255.254 << 8 = 0.255.254.0.
        ("172.16.0.0/16=250.0.0.0/8", "172.16.0.1", "250.0.1.0/24", "250.0.1.1"),
        ("172.16.0.0/16=250.0.0.0/8", "172.16.255.254", "250.255.254.0/24", "250.255.254.1"),
        # 10.0.0.0/12=252.0.0.0/7: 10.2.230.17 = 0x0a02e611, & 0x000fffff = 0x2e611;
        # << (12-7=5) = 0x5cc220 = 0.92.194.32; | 252.0.0.0; prefix 7 + 32 - 12 = 27.
        ("10.0.0.0/12=252.0.0.0/7", "10.2.230.17", "252.92.194.32/27", "252.92.194.33"),
        # The last address of that underlay: 0xfffff << 5 = 0x1ffffe0 = 1.255.255.224;
        # 252.0.0.0 | 1.255.255.224 = 253.255.255.224 (the /7 spans 252 and 253).
        ("10.0.0.0/12=252.0.0.0/7", "10.15.255.255", "253.255.255.224/27", "253.255.255.225"),
        # 192.168.0.0/20=250.0.0.0/10: 192.168.5.7 & 0.0.15.255 = 0x507; << 10 = 0x141c00
        # = 0.20.28.0; prefix 10 + 32 - 20 = 22.
        ("192.168.0.0/20=250.0.0.0/10", "192.168.5.7", "250.20.28.0/22", "250.20.28.1"),
        # /22 underlay onto /14: 10.20.2.9 & 0.0.3.255 = 0x209; << 8 = 0x20900 = 0.2.9.0; prefix 24.
        ("10.20.0.0/22=250.0.0.0/14", "10.20.2.9", "250.2.9.0/24", "250.2.9.1"),
        # /22 underlay onto /8, last address: 0x3ff << 14 = 0xffc000 = 0.255.192.0; prefix 18.
        ("10.20.0.0/22=250.0.0.0/8", "10.20.3.255", "250.255.192.0/18", "250.255.192.1"),
        # /24 underlay onto /16: 200 << 8 = 0.0.200.0 -> 250.7.200.0; prefix 16 + 8 = 24.
        ("10.0.3.0/24=250.7.0.0/16", "10.0.3.200", "250.7.200.0/24", "250.7.200.1"),
        # /24 underlay onto /8: 4 << 16 = 0.4.0.0 -> 240.4.0.0; prefix 8 + 8 = 16.
        ("10.0.3.0/24=240.0.0.0/8", "10.0.3.4", "240.4.0.0/16", "240.4.0.1"),
        # /26 underlay onto a /24: 5 << 2 = 20 -> 250.10.20.20; prefix 24 + 6 = 30.
        ("10.0.0.0/26=250.10.20.0/24", "10.0.0.5", "250.10.20.20/30", "250.10.20.21"),
    ],
)
def test_host_segment_and_gateway(config: str, host: str, segment: str, gw: str) -> None:
    m = mapping(config)
    assert str(host_segment(m, host)) == segment
    assert str(gateway(m, host)) == gw
    # The host given as an address, and as an interface with its prefix, means the same.
    assert str(host_segment(m, Addr(host))) == segment
    assert str(gateway(m, f"{host}/{m.underlay.prefixlen}")) == gw


@pytest.mark.parametrize(
    ("underlay", "overlay", "host", "lxd_address"),
    [
        # LXD fanAddress (reference 3.3), b0.b1.b2.1 with the *overlay* prefix:
        # /16 -> /8: b1 = h[2] = 3, b2 = h[3] = 4.
        ("10.0.0.0/16", "240.0.0.0/8", "10.0.3.4", "240.3.4.1/8"),
        ("172.16.0.0/16", "250.0.0.0/8", "172.16.200.17", "250.200.17.1/8"),
        # /24 -> /8: b1 = h[3] = 4, b2 = 0.
        ("10.0.3.0/24", "240.0.0.0/8", "10.0.3.4", "240.4.0.1/8"),
        ("192.168.1.0/24", "250.0.0.0/8", "192.168.1.254", "250.254.0.1/8"),
        # /24 -> /16: b1 = O[1] = 7, b2 = h[3] = 4.
        ("10.0.3.0/24", "240.7.0.0/16", "10.0.3.4", "240.7.4.1/16"),
        ("192.168.1.0/24", "250.99.0.0/16", "192.168.1.1", "250.99.1.1/16"),
    ],
)
def test_gateway_matches_lxd_fan_address(underlay: str, overlay: str, host: str, lxd_address: str) -> None:
    m = mapping(f"{underlay}={overlay}")
    lxd = ipaddress.IPv4Interface(lxd_address)
    # Same address; LXD puts the overlay prefix on the bridge, we the segment's.
    assert gateway(m, host) == lxd.ip
    assert lxd.ip in host_segment(m, host)


@pytest.mark.parametrize(
    ("config", "subnet", "expected"),
    [
        # Juju TestCalculateOverlaySegment, regular case: 172.31.16.0 & 0.0.255.255 = 0.0.16.0;
        # << 8 = 0.16.0.0 -> 253.16.0.0; prefix 8 + (20 - 16) = 12.
        ("172.31.0.0/16=253.0.0.0/8", "172.31.16.0/20", "253.16.0.0/12"),
        # Juju: underlay outside of FAN scope.
        ("172.31.0.0/16=253.0.0.0/8", "172.99.16.0/20", None),
        # Juju's funky case: 10.2.224.0 & 0x000fffff = 0x2e000; << 5 = 0x5c0000 = 0.92.0.0;
        # prefix 7 + (19 - 12) = 14.
        ("10.0.0.0/12=252.0.0.0/7", "10.2.224.0/19", "252.92.0.0/14"),
        # The whole underlay is the whole overlay.
        ("172.31.0.0/16=253.0.0.0/8", "172.31.0.0/16", "253.0.0.0/8"),
        # Larger than the underlay (though it contains it): nothing, as in Juju.
        ("172.31.0.0/16=253.0.0.0/8", "172.0.0.0/8", None),
        ("172.31.0.0/16=253.0.0.0/8", "172.31.0.0/15", None),
        # Host bits of the subnet are ignored (net.ParseCIDR masks them).
        ("172.31.0.0/16=253.0.0.0/8", "172.31.16.5/20", "253.16.0.0/12"),
        # A /32 gives the host's segment: 0.0.3.4 << 8 = 0.3.4.0, prefix 8 + 16 = 24.
        ("172.31.0.0/16=253.0.0.0/8", "172.31.3.4/32", "253.3.4.0/24"),
        # IPv6 subnets map to nothing (Juju: Contains() is false for an IPv4 entry).
        ("172.31.0.0/16=253.0.0.0/8", "2001:db8::/16", None),
        ("172.31.0.0/16=253.0.0.0/8", "::ffff:172.31.16.0/116", None),
    ],
)
def test_overlay_segment(config: str, subnet: str, expected: str | None) -> None:
    result = overlay_segment(mapping(config), subnet)
    assert (None if result is None else str(result)) == expected


def test_overlay_segment_takes_network_objects() -> None:
    m = mapping("172.31.0.0/16=253.0.0.0/8")
    assert str(overlay_segment(m, Net("172.31.16.0/20"))) == "253.16.0.0/12"
    assert overlay_segment(m, ipaddress.IPv6Network("2001:db8::/32")) is None


@pytest.mark.parametrize("text", ["something", "172.31.16.0", "172.31.16.0/33", "", "172.31.16.0/20 "])
def test_overlay_segment_rejects_garbage(text: str) -> None:
    # Juju: `invalid CIDR address: something`.
    with pytest.raises(FanConfigError, match="^" + re.escape(f"invalid CIDR address: {text}")):
        overlay_segment(mapping("172.31.0.0/16=253.0.0.0/8"), text)


@pytest.mark.parametrize(
    "address", ["172.17.0.1", "10.0.0.1", "::1", "2001:db8::1", "banana", "", "172.16.3.4/"]
)
def test_host_outside_the_underlay_is_an_error(address: str) -> None:
    m = mapping("172.16.0.0/16=250.0.0.0/8")
    with pytest.raises(FanConfigError):
        host_segment(m, address)
    with pytest.raises(FanConfigError):
        gateway(m, address)


# -- bridge names and VXLAN ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "name"),
    [
        ("172.16.0.0/16=250.0.0.0/8", "fan-250"),  # reference 6(d); fanctl(8) 0.12
        ("10.0.0.0/16=240.0.0.0/8", "fan-240"),
        ("10.0.0.0/24=250.10.0.0/16", "fan-250-10"),
        ("10.0.0.0/24=250.0.0.0/16", "fan-250-0"),
        ("10.0.0.0/26=250.10.20.0/24", "fan-250-10-20"),
        ("10.0.0.0/26=255.255.255.0/24", "fan-255-255-255"),  # exactly 15 characters
        # Non-octet prefixes keep every octet the prefix touches: ceil(7/8) = 1, ceil(10/8) = 2.
        ("10.0.0.0/12=252.0.0.0/7", "fan-252"),
        ("192.168.0.0/20=250.64.0.0/10", "fan-250-64"),
        # /26 overlays: four octets. "fan-250-1-20-64" is 15 characters and stays;
        # "fan-250-10-20-64" is 16, so it becomes fan- + hex(250.10.20.64) = fa 0a 14 40.
        ("10.0.0.0/28=250.1.20.64/26", "fan-250-1-20-64"),
        ("10.0.0.0/28=250.10.20.64/26", "fan-fa0a1440"),
        # 250.100.200.64: fa 64 c8 40.
        ("10.0.0.0/28=250.100.200.64/26", "fan-fa64c840"),
    ],
)
def test_bridge_name(config: str, name: str) -> None:
    assert bridge_name(mapping(config)) == name
    assert len(name) <= 15


@pytest.mark.parametrize(
    ("config", "vni"),
    [
        ("172.16.0.0/16=250.0.0.0/8", 16384000),  # reference 6(e): (250 << 24) >> 8 = 250 * 65536
        ("10.0.0.0/16=240.0.0.0/8", 15728640),  # 240 * 65536
        ("10.0.0.0/24=250.10.0.0/16", 16386560),  # 250 * 65536 + 10 * 256 = 16384000 + 2560
        ("10.0.0.0/24=252.92.0.0/16", 16538624),  # 252 * 65536 + 92 * 256 = 16515072 + 23552
        ("10.0.0.0/24=255.255.0.0/16", 16776960),  # 255 * 65536 + 255 * 256, below 2**24
        ("10.0.0.0/12=252.0.0.0/7", 16515072),  # 252 * 65536
        ("10.0.0.0/26=250.10.20.0/24", 16386580),  # 16386560 + 20
    ],
)
def test_vxlan_id(config: str, vni: int) -> None:
    assert vxlan_id(mapping(config)) == vni


@pytest.mark.parametrize(
    "text",
    [
        # 250.0.0.0/25 and 250.0.0.128/25 do not overlap, but both are 250.0.0.x: VNI
        # 250 * 65536 = 16384000 for each, and the kernel refuses the second device.
        "10.0.0.0/27=250.0.0.0/25 10.0.1.0/27=250.0.0.128/25",
        # 250.1.2.0/26 and 250.1.2.192/26: 250 * 65536 + 1 * 256 + 2 = 16384258 for both.
        "10.0.0.0/28=250.1.2.0/26 10.0.1.0/28=250.1.2.192/26",
    ],
)
def test_overlays_sharing_a_vxlan_id_are_rejected(text: str) -> None:
    with pytest.raises(FanConfigError, match=r"^invalid FAN config, .*VXLAN id"):
        parse_fan_config(text)


def test_overlays_longer_than_24_with_distinct_vxlan_ids_are_accepted() -> None:
    # 250.0.0.0/25 -> 16384000; 250.0.1.0/25 -> 16384000 + 1 = 16384001.
    a, b = parse_fan_config("10.0.0.0/27=250.0.0.0/25 10.0.1.0/27=250.0.1.0/25")
    assert (vxlan_id(a), vxlan_id(b)) == (16384000, 16384001)


# -- independent re-implementations --------------------------------------------------------

U32 = 0xFFFFFFFF


def _mask(prefix: int) -> int:
    return (U32 << (32 - prefix)) & U32


def _overlaps(a: int, ap: int, b: int, bp: int) -> bool:
    m = _mask(min(ap, bp))
    return a & m == b & m


UNROUTABLE = [(0x00000000, 8), (0x7F000000, 8), (0xE0000000, 4)]


def juju_overlay_segment(entry: tuple[int, int, int, int], subnet: int, s: int) -> tuple[int, int] | None:
    """Juju's CalculateOverlaySegment, byte by byte as core/network/fan.go does it."""
    underlay, u, overlay, o = entry
    network = subnet & _mask(s)  # net.ParseCIDR masks the IP
    if not (u <= s and (network & _mask(u)) == underlay):  # underlaySize <= subnetSize && Contains
        return None
    subnet_ip = list(network.to_bytes(4, "big"))
    new_prefix = o + (s - u)
    mask_bytes = _mask(u).to_bytes(4, "big")
    for i in range(4):
        subnet_ip[i] &= ~mask_bytes[i] & 0xFF  # newFanIP[i] &^= fan.Underlay.Mask[i]
    num = (int.from_bytes(bytes(subnet_ip), "big") << (u - o)) & U32  # uint32 <<= fanSize
    fan_ip = list(num.to_bytes(4, "big"))
    overlay_bytes = overlay.to_bytes(4, "big")
    for i in range(4):
        fan_ip[i] = (fan_ip[i] + overlay_bytes[i]) & 0xFF  # uint8 +=, no carry
    return int.from_bytes(bytes(fan_ip), "big"), new_prefix


def lxd_fan_address(u: int, o: int, overlay: int, host: int) -> int:
    """LXD's fanAddress octets (lxd/network/driver_bridge.go), without the prefix."""
    h = host.to_bytes(4, "big")
    ov = overlay.to_bytes(4, "big")
    b0 = ov[0]
    if o == 16:
        b1, b2 = ov[1], h[3]
    elif u == 24:
        b1, b2 = h[3], 0
    else:  # u == 16
        b1, b2 = h[2], h[3]
    return int.from_bytes(bytes([b0, b1, b2, 1]), "big")


def valid_entry(underlay: int, u: int, overlay: int, o: int) -> bool:
    """The rules, restated: Juju's mask rule plus what cannot work."""
    return (
        u > o
        and o + 32 - u <= 30
        and not _overlaps(underlay, u, overlay, o)
        and not any(_overlaps(overlay, o, n, p) for n, p in UNROUTABLE)
    )


def compatible(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two valid entries may share a config."""
    a_under, a_ulen, a_over, a_olen = a
    b_under, b_ulen, b_over, b_olen = b
    return not (
        _overlaps(a_over, a_olen, b_over, b_olen)
        or _overlaps(a_over, a_olen, b_under, b_ulen)
        or _overlaps(b_over, b_olen, a_under, a_ulen)
        or a_over >> 8 == b_over >> 8  # one VXLAN id (only possible for overlays longer than /24)
    )


def entry_text(underlay: int, u: int, overlay: int, o: int) -> str:
    return f"{Addr(underlay)}/{u}={Addr(overlay)}/{o}"


def to_mapping(parts: tuple[int, int, int, int]) -> Mapping:
    underlay, u, overlay, o = parts
    return Mapping(Net((underlay, u)), Net((overlay, o)))


@pytest.mark.parametrize(
    ("config", "subnet"),
    [
        ("172.31.0.0/16=253.0.0.0/8", "172.31.16.0/20"),
        ("10.0.0.0/12=252.0.0.0/7", "10.2.224.0/19"),
    ],
)
def test_reference_implementation_reproduces_juju_cases(config: str, subnet: str) -> None:
    # Guards the reference implementation itself against Juju's own expected values.
    expected = {"172.31.16.0/20": "253.16.0.0/12", "10.2.224.0/19": "252.92.0.0/14"}[subnet]
    u_net, o_net = (Net(side) for side in config.split("="))
    s_net = Net(subnet)
    entry = (int(u_net.network_address), u_net.prefixlen, int(o_net.network_address), o_net.prefixlen)
    got = juju_overlay_segment(entry, int(s_net.network_address), s_net.prefixlen)
    assert got is not None
    assert f"{Addr(got[0])}/{got[1]}" == expected


# -- strategies -----------------------------------------------------------------------------------

u32s = st.integers(min_value=0, max_value=U32)
ROUTABLE_FIRST_OCTETS = [*range(240, 255), *range(1, 127), *range(128, 224), 255]


@st.composite
def entries(draw: st.DrawFn, max_overlay_prefix: int = 30) -> tuple[int, int, int, int]:
    """(underlay, u, overlay, o) satisfying every rule."""
    o = draw(st.integers(min_value=2, max_value=max_overlay_prefix))
    u = draw(st.integers(min_value=o + 2, max_value=32))  # segment prefix o + 32 - u <= 30
    # A first octet outside 0, 127 and 224-239 keeps overlays of /8 and longer routable;
    # shorter ones can still reach into those ranges (96.0.0.0/3 holds 127/8).
    first = draw(st.sampled_from(ROUTABLE_FIRST_OCTETS))
    overlay = ((first << 24) | draw(st.integers(min_value=0, max_value=0xFFFFFF))) & _mask(o)
    assume(not any(_overlaps(overlay, o, n, p) for n, p in UNROUTABLE))
    underlay = draw(u32s) & _mask(u)
    assume(not _overlaps(underlay, u, overlay, o))
    return underlay, u, overlay, o


@st.composite
def configs(draw: st.DrawFn, max_overlay_prefix: int = 30) -> list[tuple[int, int, int, int]]:
    """One to four mutually compatible entries (later candidates that clash are dropped)."""
    candidates = draw(st.lists(entries(max_overlay_prefix), min_size=1, max_size=4))
    kept: list[tuple[int, int, int, int]] = []
    for candidate in candidates:
        if all(compatible(candidate, k) for k in kept):
            kept.append(candidate)
    return kept


@st.composite
def entry_and_host(draw: st.DrawFn) -> tuple[tuple[int, int, int, int], int]:
    parts = draw(entries())
    underlay, u, _, _ = parts
    return parts, underlay + draw(st.integers(min_value=0, max_value=(1 << (32 - u)) - 1))


# -- properties ----------------------------------------------------------------------------------


@PROPERTY
@given(entries(), st.data())
def test_distinct_hosts_get_disjoint_segments(parts: tuple[int, int, int, int], data: st.DataObject) -> None:
    underlay, u, _, _ = parts
    m = to_mapping(parts)
    size = 1 << (32 - u)
    assume(size >= 2)
    a = data.draw(st.integers(min_value=0, max_value=size - 1))
    b = (a + data.draw(st.integers(min_value=1, max_value=size - 1))) % size  # never a
    seg_a = host_segment(m, Addr(underlay + a))
    seg_b = host_segment(m, Addr(underlay + b))
    assert not seg_a.overlaps(seg_b)


@PROPERTY
@given(entry_and_host())
def test_segment_shape(case: tuple[tuple[int, int, int, int], int]) -> None:
    (underlay, u, overlay, o), host = case
    m = to_mapping((underlay, u, overlay, o))
    segment = host_segment(m, Addr(host))
    assert segment.subnet_of(Net((overlay, o)))
    assert segment.prefixlen == o + 32 - u
    # The design's formula: O + ((h & ~maskU) << (u - o)).
    assert int(segment.network_address) == overlay + ((host & ~_mask(u) & U32) << (u - o))
    gw = gateway(m, Addr(host))
    assert int(gw) == int(segment.network_address) + 1
    assert gw in segment
    assert gw != segment.broadcast_address  # segments are never smaller than /30


@PROPERTY
@given(entry_and_host())
def test_overlay_segment_of_a_host_route_is_the_host_segment(
    case: tuple[tuple[int, int, int, int], int],
) -> None:
    parts, host = case
    m = to_mapping(parts)
    expected = host_segment(m, Addr(host))
    assert overlay_segment(m, Net((host, 32))) == expected
    assert overlay_segment(m, f"{Addr(host)}/32") == expected
    assert host_segment(m, str(Addr(host))) == expected


@PROPERTY
@given(entries(), st.data())
def test_overlay_segment_agrees_with_jujus_algorithm(
    parts: tuple[int, int, int, int], data: st.DataObject
) -> None:
    underlay, u, _, _ = parts
    s = data.draw(st.integers(min_value=0, max_value=32), label="subnet prefix")
    inside = data.draw(st.booleans(), label="inside")
    seed = data.draw(u32s, label="subnet address")
    subnet = (underlay | (seed & ~_mask(u) & U32)) if inside else seed
    subnet &= _mask(s)
    expected = juju_overlay_segment(parts, subnet, s)
    got = overlay_segment(to_mapping(parts), Net((subnet, s)))
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (int(got.network_address), got.prefixlen) == expected


@CONFIG_PROPERTY
@given(configs())
def test_canonical_config_round_trips(config: list[tuple[int, int, int, int]]) -> None:
    text = " ".join(entry_text(*parts) for parts in config)
    mappings = [to_mapping(parts) for parts in config]
    parsed = parse_fan_config(text)
    assert parsed == mappings
    assert format_fan_config(parsed) == text
    assert parse_fan_config(format_fan_config(mappings)) == mappings


@CONFIG_PROPERTY
@given(configs(), st.data())
def test_sloppy_config_parses_to_the_canonical_one(
    config: list[tuple[int, int, int, int]], data: st.DataObject
) -> None:
    blanks = st.text(alphabet=" \t\r\n", max_size=3)
    separator = st.text(alphabet=" \t\r\n", min_size=1, max_size=3)
    text = data.draw(blanks)
    for i, (underlay, u, overlay, o) in enumerate(config):
        # Host bits set at random on both sides; they must be masked off.
        u_addr = underlay | (data.draw(u32s) & ~_mask(u) & U32)
        o_addr = overlay | (data.draw(u32s) & ~_mask(o) & U32)
        if i:
            text += data.draw(separator)
        text += f"{Addr(u_addr)}/{u}{data.draw(blanks)}={data.draw(blanks)}{Addr(o_addr)}/{o}"
    text += data.draw(blanks)
    assert parse_fan_config(text) == [to_mapping(parts) for parts in config]


@st.composite
def raw_entries(
    draw: st.DrawFn, steer_to: tuple[int, int, int, int] | None = None
) -> tuple[int, int, int, int]:
    """(underlay, u, overlay, o) that may break any rule, but often do not."""
    o = draw(st.one_of(st.integers(min_value=4, max_value=24), st.integers(min_value=0, max_value=32)))
    gap = draw(st.one_of(st.integers(min_value=2, max_value=24), st.integers(min_value=-1, max_value=1)))
    u = min(32, max(0, o + gap))
    first_octet = draw(
        st.one_of(st.integers(min_value=240, max_value=254), st.integers(min_value=0, max_value=255))
    )
    overlay = (first_octet << 24) | draw(st.integers(min_value=0, max_value=0xFFFFFF))
    underlay = draw(u32s)
    if steer_to is not None:
        # Aim the overlay at the other entry's overlay (or just its first three octets) or
        # underlay, or the underlay at its overlay, so that the cross-entry rules get exercised.
        target = draw(st.sampled_from(["none", "overlay", "vni", "underlay", "reverse", "none"]))
        if target == "overlay":
            overlay = steer_to[2]
        elif target == "vni":
            overlay = steer_to[2] | draw(st.integers(min_value=0, max_value=0xFF))
        elif target == "underlay":
            overlay = steer_to[0]
        elif target == "reverse":
            underlay = steer_to[2]
    return underlay & _mask(u), u, overlay & _mask(o), o


@PROPERTY
@given(raw_entries(), st.data())
def test_parser_accepts_exactly_what_the_rules_allow(
    first: tuple[int, int, int, int], data: st.DataObject
) -> None:
    parts = [first]
    if data.draw(st.booleans(), label="two entries"):
        parts.append(data.draw(raw_entries(steer_to=first), label="second"))
    valid = all(valid_entry(*p) for p in parts) and (len(parts) == 1 or compatible(parts[0], parts[1]))
    text = " ".join(entry_text(*p) for p in parts)
    event(f"{len(parts)} entries, {'valid' if valid else 'invalid'}")
    if valid:
        assert parse_fan_config(text) == [to_mapping(p) for p in parts]
    else:
        with pytest.raises(FanConfigError, match=r"^invalid FAN config"):
            parse_fan_config(text)


@PROPERTY
@given(st.sampled_from([(16, 8), (24, 8), (24, 16)]), u32s, st.integers(240, 254), u32s, st.integers(0, 255))
def test_gateway_agrees_with_lxd(
    shape: tuple[int, int], underlay_seed: int, o0: int, o1: int, last: int
) -> None:
    u, o = shape
    underlay = underlay_seed & _mask(u)
    overlay = ((o0 << 24) | (o1 & 0x00FF0000)) & _mask(o)
    assume(valid_entry(underlay, u, overlay, o))
    host = underlay | (underlay_seed & ~_mask(u) & U32 & ~0xFF) | last
    m = to_mapping((underlay, u, overlay, o))
    assert int(gateway(m, Addr(host))) == lxd_fan_address(u, o, overlay, host)


@CONFIG_PROPERTY
@given(
    st.integers(min_value=0xF00000, max_value=0xFEFFFF),
    st.lists(st.integers(min_value=25, max_value=30), min_size=2, max_size=2),
    st.integers(min_value=0, max_value=0xFF),
    st.integers(min_value=0, max_value=0xFF),
    st.integers(min_value=2, max_value=7),
)
def test_overlays_in_one_24_are_rejected(top: int, prefixes: list[int], x: int, y: int, gap: int) -> None:
    # Two overlays longer than /24 inside the same /24 (top = its first three octets) share
    # VXLAN id `top`, whether or not they overlap; the underlays are fine on their own.
    (o1, o2) = prefixes
    overlay1 = ((top << 8) | x) & _mask(o1)
    overlay2 = ((top << 8) | y) & _mask(o2)
    u1, u2 = min(32, o1 + gap), min(32, o2 + gap)
    text = f"{entry_text(0x0A000000, u1, overlay1, o1)} {entry_text(0x0A010000, u2, overlay2, o2)}"
    with pytest.raises(FanConfigError, match=r"^invalid FAN config, "):
        parse_fan_config(text)


@CONFIG_PROPERTY
@given(configs())
def test_bridge_names_fit_and_differ(config: list[tuple[int, int, int, int]]) -> None:
    names = [bridge_name(to_mapping(parts)) for parts in config]
    assert all(len(n) <= 15 and n.startswith("fan-") for n in names), names
    assert all(set(n[4:]) <= set(string.hexdigits.lower() + "-") for n in names), names
    assert len(set(names)) == len(names), names


@CONFIG_PROPERTY
@given(configs())
def test_vxlan_ids_fit_and_differ(config: list[tuple[int, int, int, int]]) -> None:
    ids = [vxlan_id(to_mapping(parts)) for parts in config]
    assert all(0 <= i < 1 << 24 for i in ids), ids
    assert ids == [overlay >> 8 for _, _, overlay, _ in config]
    assert len(set(ids)) == len(ids), ids


def _parse_or_error(text: str) -> None:
    try:
        result = parse_fan_config(text)
    except FanConfigError as e:
        assert str(e), "an error must say what is wrong"
    else:
        assert isinstance(result, list)
        assert all(isinstance(m, Mapping) for m in result)


@PROPERTY
@given(st.text())
def test_arbitrary_text_only_raises_fan_config_error(text: str) -> None:
    _parse_or_error(text)


@PROPERTY
@given(st.text(alphabet="0123456789./=:- \t\nabcdef\u00a0\u0663\uff10", max_size=60))
def test_cidr_like_text_only_raises_fan_config_error(text: str) -> None:
    _parse_or_error(text)


@PROPERTY
@given(st.text())
def test_overlay_segment_of_arbitrary_text_only_raises_fan_config_error(text: str) -> None:
    try:
        result = overlay_segment(mapping("10.0.0.0/16=250.0.0.0/8"), text)
    except FanConfigError as e:
        assert "invalid CIDR address" in str(e)
    else:
        assert result is None or result.subnet_of(Net("250.0.0.0/8"))


def test_overlay_segment_accepts_address_and_interface_objects():
    # A binding interface (address with its subnet) means its subnet; a bare address a /32.
    m = mapping("172.31.0.0/16=253.0.0.0/8")
    assert str(overlay_segment(m, ipaddress.IPv4Interface("172.31.16.9/20"))) == "253.16.0.0/12"
    assert str(overlay_segment(m, Addr("172.31.16.9"))) == "253.16.9.0/24"
