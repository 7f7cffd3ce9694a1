"""Failure suite, hostile relation data: what other units write is never trusted.

`fan-peers` unit databags (underlay-addresses, machine, fan-kernel) and the leader's
`dataplane`, and the `fan` relation payloads the requirer library reads, filled with
wrong types, bad addresses, addresses outside the underlay, shell metacharacters, huge
lists, deep nesting, conflicting claims to a segment, non-JSON and unicode. Each must be
ignored and logged (a WARNING in juju-log naming the unit), never raise, and never reach
a command: the fans the data plane is asked to carry hold only the valid peers, and
with the real vxlan plane (fake tools recording what they are sent) every line of every
batch is checked against the addresses of the valid peers. The e2e failure suite does
the same on a real kernel.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import ipaddress
import json
import re
import sys
from pathlib import Path
from typing import Any

import ops
import pytest
from charms.fan_networking.v0 import fan as fanlib
from charms.fan_networking.v0.fan import FanInfo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops import testing

from tests.unit.conftest import FakeMachine, fan_state, peer_data

VXLAN = {"fan-config": "172.16.0.0/16=250.0.0.0/8", "dataplane": "vxlan"}
AUTO = {"fan-config": "172.16.0.0/16=250.0.0.0/8"}
UNDERLAY = ipaddress.IPv4Network("172.16.0.0/16")
ME = "172.16.3.4"  # this unit's address (machine 3), see conftest.fan_state
VALID_PEERS = {1: peer_data("172.16.5.6", "4"), 2: peer_data("172.16.7.8", "5")}
VALID_ROUTES = {("fan-networking/1", "172.16.5.6"), ("fan-networking/2", "172.16.7.8")}
HOSTILE_ID = 9

PAYLOADS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def warnings_about(ctx: testing.Context, unit: str, since: int = 0) -> list[str]:
    """WARNING lines naming `unit`, from line `since` on (a Context keeps the log of every run)."""
    return [line.message for line in ctx.juju_log[since:] if line.level == "WARNING" and unit in line.message]


def routes_applied(journal: list[tuple[str, str, object]]) -> set[tuple[str, str]]:
    """(unit, underlay address) of every peer route in the last fans the plane was asked to carry."""
    fans = [entry for entry in journal if entry[0] == "apply"][-1][2]
    return {(p.unit, str(p.underlay)) for f in fans for p in f.peers}  # type: ignore[attr-defined]


# -- fan-peers: a table of hostile databags ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Hostile:
    name: str
    data: dict[str, str]
    routed: str | None = None  # the address a route may use: the hostile *field* is elsewhere
    warns: bool = True


def addresses(value: Any) -> dict[str, str]:
    return {"underlay-addresses": value if isinstance(value, str) else json.dumps(value), "machine": '"20"'}


def deep(n: int) -> str:
    return "[" * n + "]" * n


_ROUTABLE = iter(f"172.16.{200 + i // 250}.{1 + i % 250}" for i in range(10_000))


def field(key: str, raw: str, warns: bool = True) -> Hostile:
    """A peer with a routable address and one hostile field besides."""
    address = next(_ROUTABLE)
    data = {"underlay-addresses": json.dumps([address]), "machine": '"21"', key: raw}
    return Hostile(f"{key}={raw[:30]!r}", data, address, warns)


HOSTILE_PEERS: list[Hostile] = [
    # underlay-addresses that are not a list of IPv4 addresses
    *(
        Hostile(f"not-json {raw[:20]!r}", addresses(raw))
        for raw in [
            "not json",
            "",
            "[",
            '["172.16.9.9"',
            "172.16.9.9",
            "['172.16.9.9']",
            "[172.16.9.9]",
            "\x00",
            "\ufeff[]",
            '["172.16.9.9"]; reboot',
            "$(reboot)",
            "`id`",
        ]
    ),
    *(
        Hostile(f"not-a-list {raw!r}", addresses(raw))
        for raw in ['"172.16.9.9"', "42", "true", "1.5", '{"0": "172.16.9.9"}', "NaN", "-Infinity", '"[]"']
    ),
    Hostile("null", addresses("null"), warns=False),  # the same as not published yet
    *(
        Hostile(f"bad item {item!r}", addresses([item]))
        for item in [
            "172.16.9.9; rm -rf /",
            "$(reboot)",
            "172.16.9.9`id`",
            "172.16.9.9 && reboot",
            "172.16.9.9|sh",
            "172.16.9.9\n",
            " 172.16.9.9",
            "172.016.9.9",
            "172.16.9.256",
            "172.16.9",
            "172.16.9.9.1",
            "172.16.9.9/16",
            "172.16.9.9%eth0",
            "0x0a.0.0.1",
            "fe80::1",
            "::ffff:172.16.9.9",
            "\u0661\u0667\u0662.16.9.9",
            "\uff11\uff17\uff12.16.9.9",
            "172.16.9.9\u200b",
            "\ud800",
            "",
            "A" * 100_000,
            2886732041,  # 172.16.9.9 as an integer
            -1,
            1.5,
            True,
            None,
            ["172.16.9.9"],
            {"address": "172.16.9.9"},
        ]
    ),
    Hostile("deep item", addresses(f"[{deep(500)}]")),
    Hostile("33 addresses", addresses([f"172.16.9.{i}" for i in range(1, 34)])),
    Hostile("100000 addresses", addresses(["172.16.9.9"] * 100_000)),
    Hostile("deep list", addresses(deep(100_000))),
    Hostile("deep object", addresses('{"a":' * 100_000)),
    Hostile("unclosed deep list", addresses("[" * 100_000)),
    # IPv4, but not a peer of this fan
    *(
        Hostile(f"outside {item}", addresses([item]))
        for item in [
            "10.0.0.1",
            "192.168.1.1",
            "250.5.6.1",  # a gateway in the overlay
            "250.3.4.1",  # this machine's own gateway
            "0.0.0.0",
            "255.255.255.255",
            "127.0.0.1",
            "224.0.0.1",
            "172.17.0.1",
        ]
    ),
    Hostile("all outside", addresses(["10.0.0.1", "192.168.1.1", "127.0.0.1", "250.0.0.1", "8.8.8.8"])),
    Hostile("this machine", addresses([ME])),
    Hostile("network address", addresses(["172.16.0.0"])),
    Hostile("broadcast address", addresses(["172.16.255.255"])),
    Hostile("this machine first", addresses([ME, "172.16.9.9"])),
    # one hostile field beside a routable address: the field is dropped, the address kept
    *(
        field("machine", raw)
        for raw in [
            '"3; reboot"',
            '"$(id)"',
            '"4\\n"',
            '"../../etc"',
            '"0/lxd/0/lxd"',
            '"0/LXD/1"',
            '"\u0663"',
            '""',
            "true",
            "-1",
            "1.5",
            "[]",
            "{}",
            "not json",
            deep(5000),
        ]
    ),
    *(
        field("fan-kernel", raw)
        for raw in ['"yes"', '"true"', "1", "0", "[true]", "{}", "not json", '"\u2713"', deep(5000)]
    ),
    field("fan-kernel", "null", warns=False),
    field("machine", "42", warns=False),  # an integer machine id is still an id
    field("x; rm -rf /", "$(reboot)", warns=False),  # unknown keys are not read at all
    # claims to be on this machine (like a second principal's unit): never a peer host
    Hostile(
        "on this machine", {"underlay-addresses": json.dumps(["172.16.9.9"]), "machine": '"3"'}, warns=False
    ),
]


@pytest.mark.parametrize("hostile", HOSTILE_PEERS, ids=[h.name for h in HOSTILE_PEERS])
def test_a_hostile_peer_is_ignored_and_logged(
    ctx: testing.Context, machine: FakeMachine, vxlan_journal: list, hostile: Hostile
) -> None:
    state = fan_state(VXLAN, peers={**VALID_PEERS, HOSTILE_ID: hostile.data})
    relation = state.get_relations("fan-peers")[0]

    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=HOSTILE_ID), state)

    expected = set(VALID_ROUTES)
    if hostile.routed:
        expected.add((f"fan-networking/{HOSTILE_ID}", hostile.routed))
    assert routes_applied(vxlan_journal) == expected
    assert out.unit_status.name == "active"
    assert out.unit_status.message.endswith(f", {len(expected)} peers)")
    if hostile.warns:
        assert warnings_about(ctx, f"fan-networking/{HOSTILE_ID}"), [str(line) for line in ctx.juju_log]


# -- conflicting claims to a segment -----------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "expected", "blamed"),
    [
        # Someone else claims peer 1's address: neither can be trusted with the segment.
        ({9: peer_data("172.16.5.6", "66")}, {("fan-networking/2", "172.16.7.8")}, ["/1", "/9"]),
        # Two newcomers claim one address from different machines: both dropped.
        (
            {9: peer_data("172.16.9.9", "66"), 10: peer_data("172.16.9.9", "67")},
            VALID_ROUTES,
            ["/10", "/9"],
        ),
        # A claim without a (valid) machine conflicts too: the unit stands for its host.
        (
            {9: {**peer_data("172.16.7.8", "5"), "machine": '"5\\n"'}},
            {("fan-networking/1", "172.16.5.6")},
            ["/2"],
        ),
        # The same machine twice (two principals' units): one host, one route, no conflict.
        ({9: peer_data("172.16.5.6", "4")}, VALID_ROUTES, []),
    ],
)
def test_conflicting_claims_to_a_segment_are_dropped_and_logged(
    ctx: testing.Context, machine: FakeMachine, vxlan_journal: list, claims: dict, expected: set, blamed: list
) -> None:
    out = ctx.run(ctx.on.config_changed(), fan_state(VXLAN, peers={**VALID_PEERS, **claims}))

    assert routes_applied(vxlan_journal) == expected
    assert out.unit_status.name == "active"
    conflicts = [
        line.message for line in ctx.juju_log if line.level == "WARNING" and "all claim" in line.message
    ]
    for unit in blamed:
        assert any(f"fan-networking{unit}" in line for line in conflicts), conflicts


# -- fan-peers: generated hostile databags ----------------------------------------------------

_OUTSIDE = st.builds(
    lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 0xFFFFFFFF).filter(lambda n: n >> 16 != 0xAC10)
)
_BAD_STRINGS = st.sampled_from(
    [
        "172.16.9.9; reboot",
        "$(reboot)",
        "`id`",
        "172.16.9.9 ",
        "172.016.9.9",
        "172.16.9.300",
        "fe80::1",
        "172.16.9.9/24",
        "\u0661\u0667\u0662.16.9.9",
        "172.16.9.9\u200b",
        "",
        "\ud800",
        ME,
        "172.16.0.0",
        "172.16.255.255",
    ]
)


def _not_routable(text: str) -> bool:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return True
    return address not in UNDERLAY or str(address) in (ME, "172.16.0.0", "172.16.255.255")


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return True
    return False


_BAD_ITEMS = st.one_of(
    _BAD_STRINGS,
    _OUTSIDE,
    st.text(max_size=20).filter(_not_routable),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
_JSON_SCALARS = st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=30))


def _dumps(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


_HOSTILE_ADDRESSES = st.one_of(
    st.builds(_dumps, st.lists(_BAD_ITEMS, min_size=1, max_size=32), st.booleans()),
    st.builds(
        _dumps,
        st.lists(st.builds(lambda n: f"172.16.9.{n}", st.integers(1, 254)), min_size=33, max_size=300),
        st.booleans(),
    ),
    st.text(max_size=50).filter(_not_json),
    st.builds(
        _dumps, st.one_of(_JSON_SCALARS, st.dictionaries(st.text(max_size=5), _JSON_SCALARS)), st.booleans()
    ),
    st.integers(1000, 60_000).map(deep),
    st.integers(1000, 60_000).map(lambda n: '{"a":' * n),
)
_MACHINES = st.one_of(
    st.sampled_from(['"7"', '"0/lxd/1"', '"12/kvm/0"']),  # valid, another host
    st.builds(_dumps, _JSON_SCALARS.filter(lambda v: v != "3"), st.booleans()),
    st.text(max_size=20).filter(_not_json),
    st.integers(1000, 20_000).map(deep),
)
_KERNELS = st.one_of(
    st.sampled_from(["true", "false"]),
    st.builds(_dumps, _JSON_SCALARS, st.booleans()),
    st.text(max_size=10).filter(_not_json),
)


@st.composite
def hostile_databags(draw: st.DrawFn) -> dict[str, str]:
    data = {"underlay-addresses": draw(_HOSTILE_ADDRESSES)}
    if draw(st.booleans()):
        data["machine"] = draw(_MACHINES)
    if draw(st.booleans()):
        data["fan-kernel"] = draw(_KERNELS)
    if draw(st.integers(0, 4)) == 0:
        data[draw(st.text(min_size=1, max_size=10))] = draw(st.text(max_size=30))
    return data


def test_generated_hostile_peers_are_ignored_and_logged(
    ctx: testing.Context, machine: FakeMachine, vxlan_journal: list
) -> None:
    seen = collections.Counter()

    @settings(PAYLOADS, max_examples=120)
    @given(st.lists(hostile_databags(), min_size=1, max_size=4))
    def check(databags: list[dict[str, str]]) -> None:
        seen["payloads"] += len(databags)
        hostile = {10 + i: data for i, data in enumerate(databags)}
        vxlan_journal.clear()
        start = len(ctx.juju_log)
        out = ctx.run(ctx.on.config_changed(), fan_state(VXLAN, peers={**VALID_PEERS, **hostile}))
        assert routes_applied(vxlan_journal) == VALID_ROUTES
        assert out.unit_status.name == "active" and out.unit_status.message.endswith(", 2 peers)")
        for unit, data in hostile.items():
            assert warnings_about(ctx, f"fan-networking/{unit}", start), (data, ctx.juju_log[start:])

    check()
    assert seen["payloads"] >= 120


# -- the real vxlan plane: what the tools are sent ---------------------------------------------


def test_commands_hold_only_what_valid_peers_said(ctx: testing.Context, machine: FakeMachine) -> None:
    hostile = {100 + i: h.data for i, h in enumerate(HOSTILE_PEERS)}
    routed = {h.routed for h in HOSTILE_PEERS if h.routed}
    peers = {**VALID_PEERS, **hostile}

    out = ctx.run(ctx.on.config_changed(), fan_state(VXLAN, peers=peers))

    assert out.unit_status.name == "active", out.unit_status
    valid = {"172.16.5.6", "172.16.7.8", *routed}
    segments = {f"250.{a.split('.')[2]}.{a.split('.')[3]}" for a in valid}
    allowed = (
        valid
        | {f"{s}.1" for s in segments}
        | {f"{s}.0/24" for s in segments}
        | {ME, "250.3.4.1/24", "250.3.4.0/24", "250.0.0.0/8"}
    )
    macs = {"02:fa:" + ":".join(f"{int(b):02x}" for b in a.split(".")) for a in valid | {ME}}
    sent = [json.loads(line) for line in machine.log.read_text().splitlines()]
    batches = [s for s in sent if s["argv"][:2] in (["ip", "-batch"], ["bridge", "-batch"])]
    assert batches, "the plane sent no batch"
    lines = [line for s in batches for line in s["stdin"].splitlines()]
    for line in lines:
        assert re.fullmatch(r"[a-z0-9 ./:_-]+", line), f"unexpected characters in {line!r}"
        assert set(re.findall(r"\d+\.\d+\.\d+\.\d+(?:/\d+)?", line)) <= allowed, line
        assert set(re.findall(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}", line)) <= macs, line
    fdb = {m.group(1) for line in lines if (m := re.search(r"^fdb replace \S+ dev \S+ dst (\S+)", line))}
    assert fdb == valid, "one FDB entry per valid peer, none for the hostile ones"
    everything = json.dumps([s["argv"] for s in sent]) + "".join(s["stdin"] or "" for s in sent)
    for marker in ("reboot", "rm -rf", "$(", "`", "&&", "|sh", "\u200b", "../", "172.16.9.9", "10.0.0.1"):
        assert marker not in everything, marker


# -- the leader's dataplane --------------------------------------------------------------------

HOSTILE_DATAPLANES = [
    '"ubuntu-fan; reboot"',
    '"$(reboot)"',
    '"VXLAN"',
    '"vxlan "',
    '"ubuntu_fan"',
    '"auto"',
    '["vxlan"]',
    '{"vxlan": true}',
    "42",
    "true",
    "vxlan",  # not JSON
    "",
    '"\u0076xlan\u200b"',
    deep(100_000),
    '{"a":' * 100_000,
    json.dumps("x" * 100_000),
]


@pytest.mark.parametrize(
    "raw", HOSTILE_DATAPLANES, ids=[f"dataplane-{i}" for i in range(len(HOSTILE_DATAPLANES))]
)
def test_a_hostile_dataplane_choice_is_ignored_and_logged(
    ctx: testing.Context, machine: FakeMachine, raw: str
) -> None:
    machine.set_fan_kernel(True)  # so the non-leader needs the leader's choice
    out = ctx.run(ctx.on.config_changed(), fan_state(AUTO, leader=False, app_data={"dataplane": raw}))

    assert out.unit_status == testing.WaitingStatus("waiting for the leader to choose the data plane")
    assert machine.mutating() == []
    assert any(line.level == "WARNING" and "dataplane" in line.message for line in ctx.juju_log)

    # The leader replaces it with a real choice.
    out = ctx.run(ctx.on.config_changed(), fan_state(AUTO, leader=True, app_data={"dataplane": raw}))
    assert json.loads(out.get_relations("fan-peers")[0].local_app_data["dataplane"]) == "ubuntu-fan"
    assert out.unit_status.name == "active"


# -- what principals write on the `fan` relation ----------------------------------------------

PRINCIPAL_DATA = [
    {"fans": "not json"},
    {"fans": deep(100_000)},
    {"fans": json.dumps([{"segment": "0.0.0.0/0", "gateway": "0.0.0.1", "bridge": "eth0"}])},
    {"x; rm -rf /": "$(reboot)", "": "\ud800"},
    {"underlay-addresses": json.dumps(["172.16.9.9"]), "machine": '"4"'},  # peer keys, wrong relation
]


@pytest.mark.parametrize("data", PRINCIPAL_DATA, ids=[f"principal-{i}" for i in range(len(PRINCIPAL_DATA))])
def test_what_principals_write_on_the_fan_relation_is_never_read(
    ctx: testing.Context, machine: FakeMachine, vxlan_journal: list, data: dict[str, str]
) -> None:
    fan_rel = testing.SubordinateRelation(
        "fan", remote_app_name="app", remote_unit_data=data, remote_app_data=data
    )

    out = ctx.run(
        ctx.on.relation_changed(fan_rel), fan_state(VXLAN, peers=VALID_PEERS, extra_relations=(fan_rel,))
    )

    assert out.unit_status.message == "fan 250.3.4.0/24 on fan-250 (vxlan, mtu 1450, 2 peers)"
    assert routes_applied(vxlan_journal) == VALID_ROUTES
    published = json.loads(out.get_relation(fan_rel.id).local_unit_data["fans"])
    assert [(f["segment"], f["bridge"]) for f in published] == [("250.3.4.0/24", "fan-250")]


# -- the `fan` relation, as the requirer library reads it --------------------------------------


def _requirer_charm() -> type[ops.CharmBase]:
    """tests/charms/fan_requirer's charm, under its own module name (`charm` is ours)."""
    name = "fan_requirer_test_charm"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "charms" / "fan_requirer" / "src" / "charm.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].FanRequirerCharm


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


def _network(value: object) -> ipaddress.IPv4Network | None:
    """The contract's IPv4 CIDR string: dotted quad, /0../32, no host bits; else None."""
    if not isinstance(value, str) or "/" not in value:
        return None
    address, _, prefix = value.partition("/")
    if not _DOTTED.fullmatch(address) or not re.fullmatch(r"[1-3]?[0-9]", prefix, re.ASCII):
        return None
    if int(prefix) > 32:
        return None
    network = int(ipaddress.IPv4Address(address))
    mask = (0xFFFFFFFF << (32 - int(prefix))) & 0xFFFFFFFF if int(prefix) else 0
    if network & ~mask & 0xFFFFFFFF:
        return None
    return ipaddress.IPv4Network(value)


def expected_fan(entry: object) -> FanInfo | None:
    """What the requirer must make of one entry, by the rules in the library's docstring."""
    if not isinstance(entry, dict):
        return None
    segment = _network(entry.get("segment"))
    gateway_text = entry.get("gateway")
    gateway = (
        ipaddress.IPv4Address(gateway_text)
        if isinstance(gateway_text, str) and _DOTTED.fullmatch(gateway_text)
        else None
    )
    bridge = entry.get("bridge")
    bridge_ok = (
        isinstance(bridge, str)
        and 1 <= len(bridge) <= 15
        and all("!" <= c <= "~" for c in bridge)
        and "/" not in bridge
        and ":" not in bridge
        and bridge not in (".", "..")
    )
    if segment is None or gateway is None or gateway not in segment or not bridge_ok:
        return None
    mtu = entry.get("mtu")
    dataplane = entry.get("dataplane")
    return FanInfo(
        underlay=_network(entry.get("underlay")),
        overlay=_network(entry.get("overlay")),
        segment=segment,
        gateway=gateway,
        bridge=bridge,  # type: ignore[arg-type]
        mtu=mtu if type(mtu) is int and 68 <= mtu <= 65535 else None,
        dataplane=dataplane if isinstance(dataplane, str) and len(dataplane) <= 64 else None,
    )


_SEGMENTS = ["250.3.4.0/24", "250.0.0.0/8", "251.7.0.0/16", "252.1.2.4/30"]
_CIDRS = st.one_of(
    st.sampled_from(_SEGMENTS),
    st.sampled_from(
        [
            "250.3.4.1/24",  # host bits
            "250.3.4.0/33",
            "250.3.4.0",
            "250.3.4.0/24; reboot",
            "$(reboot)",
            "250.03.4.0/24",
            "250.3.4.0/255.255.255.0",
            "fd00::/8",
            "\u0662\u0665\u0660.3.4.0/24",
            " 250.3.4.0/24",
            "250.3.4.0/24\n",
        ]
    ),
    st.text(max_size=20),
    _JSON_SCALARS,
    st.none(),
)
_GATEWAYS = st.one_of(
    st.sampled_from(["250.3.4.1", "250.3.4.254", "250.0.0.1", "251.7.0.1", "252.1.2.5"]),
    st.sampled_from(["250.3.5.1", "250.3.4.1/24", "250.03.4.1", "250.3.4.1;id", "::1", "250.3.4.1 ", ""]),
    st.text(max_size=15),
    _JSON_SCALARS,
    st.none(),
)
_BRIDGES = st.one_of(
    st.sampled_from(["fan-250", "fan-251", "lxdfan0", "br0"]),
    st.sampled_from(
        [
            "fan-250;reboot",  # printable ASCII: an interface name the kernel would take
            "$(reboot)",
            "../../etc",
            "fan/250",
            "fan:250",
            "fan 250",
            "fan-250\n",
            ".",
            "..",
            "",
            "a" * 16,
            "f\u00e4n",
            "fan\u200b",
            "fan\x00",
        ]
    ),
    st.text(max_size=16),
    _JSON_SCALARS,
    st.none(),
)
_MTUS = st.one_of(st.sampled_from([1450, 8950, 68, 65535, 67, 65536, 0, -1]), _JSON_SCALARS, st.none())
_WIRE_STRATEGIES = {
    "underlay": _CIDRS,
    "overlay": _CIDRS,
    "segment": _CIDRS,
    "gateway": _GATEWAYS,
    "bridge": _BRIDGES,
    "mtu": _MTUS,
    "dataplane": st.one_of(st.sampled_from(["vxlan", "ubuntu-fan", "x" * 65]), _JSON_SCALARS, st.none()),
}


GOOD_ENTRIES = [
    {
        "underlay": "10.0.0.0/16",
        "overlay": "250.0.0.0/8",
        "segment": "250.3.4.0/24",
        "gateway": "250.3.4.1",
        "bridge": "fan-250",
        "mtu": 1450,
        "dataplane": "vxlan",
    },
    {"segment": "251.7.0.0/16", "gateway": "251.7.0.1", "bridge": "fan-251-7", "mtu": 8950},
    {"segment": "252.1.2.4/30", "gateway": "252.1.2.5", "bridge": "lxdfan0", "dataplane": "ubuntu-fan"},
]


@st.composite
def wire_entries(draw: st.DrawFn) -> object:
    """A provider's entry: a good one with up to three fields broken, or anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(_JSON_SCALARS, st.lists(st.integers(), max_size=3), st.none()))
    entry: dict[str, object] = dict(draw(st.sampled_from(GOOD_ENTRIES)))
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
        key = draw(st.sampled_from(sorted(_WIRE_STRATEGIES)))
        if draw(st.integers(0, 3)) == 0:
            entry.pop(key, None)
        else:
            entry[key] = draw(_WIRE_STRATEGIES[key])
    if draw(st.integers(0, 5)) == 0:
        entry[draw(st.text(max_size=8))] = draw(_JSON_SCALARS)
    return entry


@st.composite
def fan_payloads(draw: st.DrawFn) -> tuple[str, list[FanInfo]]:
    """(the `fans` value, what the requirer must read from it)."""
    shape = draw(st.sampled_from(["list", "list", "list", "many", "not-json", "not-list", "deep", "huge"]))
    if shape == "not-json":
        return draw(st.text(max_size=60).filter(_not_json)), []
    if shape == "not-list":
        return _dumps(
            draw(st.one_of(_JSON_SCALARS, st.dictionaries(st.text(max_size=5), _JSON_SCALARS))), True
        ), []
    if shape == "deep":
        return deep(draw(st.integers(1000, 100_000))), []
    if shape == "huge":  # over the size limit, however good the entries
        good = {"segment": "250.3.4.0/24", "gateway": "250.3.4.1", "bridge": "fan-250"}
        return json.dumps([good] * (fanlib.MAX_PAYLOAD_CHARS // 60)), []
    entries = draw(st.lists(wire_entries(), min_size=0, max_size=6))
    if shape == "many":
        entries = entries * draw(st.integers(50, 120))
    payload = _dumps(entries, draw(st.booleans()))
    expected = [f for f in (expected_fan(e) for e in entries[: fanlib.MAX_FANS]) if f is not None]
    return payload, list(dict.fromkeys(expected))


def test_generated_fan_payloads_are_read_tolerantly() -> None:
    ctx = testing.Context(_requirer_charm(), app_name="principal", unit_id=0)
    seen = collections.Counter()

    @settings(PAYLOADS, max_examples=200)
    @given(fan_payloads())
    def check(case: tuple[str, list[FanInfo]]) -> None:
        payload, expected = case
        rel = testing.SubordinateRelation(
            "fan", remote_app_name="fan-networking", remote_unit_data={"fans": payload}
        )
        start = len(ctx.juju_log)
        with ctx(ctx.on.relation_changed(rel, remote_unit=0), testing.State(relations={rel})) as manager:
            manager.run()
            charm: Any = manager.charm
        assert charm.seen == [("fans_changed" if expected else "fans_removed", expected)]
        parsed = _entry_count(payload)
        if parsed is None or len(expected) < min(parsed, fanlib.MAX_FANS):
            warned = [line for line in ctx.juju_log[start:] if line.level == "WARNING"]
            assert warned or _all_duplicates(payload, expected), "an ignored payload or entry is not logged"
        seen["fans" if expected else "none"] += 1

    check()
    assert seen["fans"] >= 40 and seen["none"] >= 40, seen


def _entry_count(payload: str) -> int | None:
    """How many entries the payload holds, or None when it is not a usable JSON list."""
    if payload == "":
        return 0  # the same as nothing published: no fans, nothing to warn about
    if len(payload) > fanlib.MAX_PAYLOAD_CHARS:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return len(data) if isinstance(data, list) else None


def _all_duplicates(payload: str, expected: list[FanInfo]) -> bool:
    """True when every entry was usable and only duplicates were dropped (nothing to warn of)."""
    data = json.loads(payload)[: fanlib.MAX_FANS]
    return all(expected_fan(e) is not None for e in data)
