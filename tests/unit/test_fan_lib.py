"""The `fan` charm library, requirer side: typed data, events, and tolerance of bad provider data.

The requirer runs for real in tests/charms/fan_requirer (a fan-aware principal) under
ops.testing; the `fan` endpoint is container-scoped, so the relation is a SubordinateRelation.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import ipaddress
import json
import logging
import sys
from pathlib import Path
from typing import Any

import ops
import pytest
from charms.fan_networking.v0 import fan as fanlib
from charms.fan_networking.v0.fan import FanInfo, FanRequirer, parse_fans, serialize_fans
from ops import testing

REQUIRER_ROOT = Path(__file__).resolve().parents[1] / "charms" / "fan_requirer"


def _load_requirer_charm() -> type[ops.CharmBase]:
    """Import the test charm under its own name (the module `charm` is fan-networking's)."""
    name = "fan_requirer_test_charm"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REQUIRER_ROOT / "src" / "charm.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].FanRequirerCharm


FanRequirerCharm = _load_requirer_charm()

# -- wire test vectors (pinned: never edit one, add a new one) ---------------------------

ENTRY = {
    "underlay": "10.0.0.0/16",
    "overlay": "250.0.0.0/8",
    "segment": "250.3.4.0/24",
    "gateway": "250.3.4.1",
    "bridge": "fan-250",
    "mtu": 1450,
    "dataplane": "vxlan",
}
FAN_250 = FanInfo(
    underlay=ipaddress.IPv4Network("10.0.0.0/16"),
    overlay=ipaddress.IPv4Network("250.0.0.0/8"),
    segment=ipaddress.IPv4Network("250.3.4.0/24"),
    gateway=ipaddress.IPv4Address("250.3.4.1"),
    bridge="fan-250",
    mtu=1450,
    dataplane="vxlan",
)
ENTRY_252 = {
    "underlay": "172.16.0.0/16",
    "overlay": "252.0.0.0/8",
    "segment": "252.3.4.0/24",
    "gateway": "252.3.4.1",
    "bridge": "fan-252",
    "mtu": 8950,
    "dataplane": "ubuntu-fan",
}
FAN_252 = FanInfo(
    underlay=ipaddress.IPv4Network("172.16.0.0/16"),
    overlay=ipaddress.IPv4Network("252.0.0.0/8"),
    segment=ipaddress.IPv4Network("252.3.4.0/24"),
    gateway=ipaddress.IPv4Address("252.3.4.1"),
    bridge="fan-252",
    mtu=8950,
    dataplane="ubuntu-fan",
)

# What the provider writes for [FAN_250]: key order, spacing and the JSON number for mtu are
# part of the contract (a byte change would wake every requirer after an upgrade).
PROVIDER_VECTOR_V1 = (
    '[{"underlay": "10.0.0.0/16", "overlay": "250.0.0.0/8", "segment": "250.3.4.0/24", '
    '"gateway": "250.3.4.1", "bridge": "fan-250", "mtu": 1450, "dataplane": "vxlan"}]'
)
# Written by fan-networking before this library (charm.fan_record): dataplane "" when the
# machine carried no data plane yet.
OLD_VECTOR = (
    '[{"underlay": "172.16.0.0/16", "overlay": "252.0.0.0/8", "segment": "252.3.4.0/24", '
    '"gateway": "252.3.4.1", "bridge": "fan-252", "mtu": 8950, "dataplane": ""}]'
)
OLD_VECTOR_FANS = [dataclasses.replace(FAN_252, dataplane="")]
# What a later provider may write: compact, keys reordered, new fields of every JSON type.
NEW_VECTOR = (
    '[{"bridge":"fan-250","vni":16384000,"gateway":"250.3.4.1","segment":"250.3.4.0/24",'
    '"dhcp-range":["250.3.4.2","250.3.4.254"],"mtu":1450,"dataplane":"vxlan","encap":null,'
    '"underlay":"10.0.0.0/16","overlay":"250.0.0.0/8","direct":false,"peers":[{"unit":"fan/1"}]}]'
)
# Only the three required fields.
MINIMAL_VECTOR = '[{"segment": "250.3.4.0/24", "gateway": "250.3.4.1", "bridge": "fan-250"}]'
MINIMAL_FANS = [
    FanInfo(
        segment=ipaddress.IPv4Network("250.3.4.0/24"),
        gateway=ipaddress.IPv4Address("250.3.4.1"),
        bridge="fan-250",
    )
]


def fans_json(*entries: Any) -> str:
    return json.dumps(list(entries))


def entry(**changes: Any) -> dict[str, Any]:
    """ENTRY with `changes`; a value of `...` removes the key."""
    result = {**ENTRY, **changes}
    return {k: v for k, v in result.items() if v is not ...}


def info(data: dict[str, Any]) -> FanInfo:
    """The FanInfo of a valid wire entry."""
    result = FanInfo.from_dict(data)
    assert result is not None
    return result


def numbered(i: int) -> dict[str, Any]:
    """A distinct valid entry per i (0..65535)."""
    segment = f"250.{i // 256}.{i % 256}.0/24"
    return entry(segment=segment, gateway=segment.replace(".0/24", ".1"))


# -- running the requirer charm -----------------------------------------------------------


@pytest.fixture
def requirer_ctx() -> testing.Context[ops.CharmBase]:
    return testing.Context(FanRequirerCharm, app_name="principal", unit_id=0)


def fan_relation(
    fans: str | None = None, app: str = "fan-networking", unit: int = 0
) -> testing.SubordinateRelation:
    data = {} if fans is None else {"fans": fans}
    return testing.SubordinateRelation(
        "fan", remote_app_name=app, remote_unit_id=unit, remote_unit_data={"egress-subnets": "", **data}
    )


def run(ctx: testing.Context[ops.CharmBase], event: Any, state: testing.State) -> tuple[Any, testing.State]:
    """Run `event`; returns (the charm, for `seen` and `fan`, and the output state)."""
    with ctx(event, state) as mgr:
        out = mgr.run()
        return mgr.charm, out


def changed(ctx: testing.Context[ops.CharmBase], fans: str | None) -> list[tuple[str, list[FanInfo]]]:
    rel = fan_relation(fans)
    charm, _ = run(ctx, ctx.on.relation_changed(rel, remote_unit=0), testing.State(relations={rel}))
    return charm.seen


# -- events -------------------------------------------------------------------------------


def test_fans_appear_emits_fans_changed_with_typed_values(requirer_ctx):
    rel = fan_relation(PROVIDER_VECTOR_V1)
    charm, out = run(
        requirer_ctx, requirer_ctx.on.relation_changed(rel, remote_unit=0), testing.State(relations={rel})
    )

    assert charm.seen == [("fans_changed", [FAN_250])]
    info = charm.seen[0][1][0]
    assert isinstance(info.underlay, ipaddress.IPv4Network)
    assert isinstance(info.overlay, ipaddress.IPv4Network)
    assert isinstance(info.segment, ipaddress.IPv4Network)
    assert isinstance(info.gateway, ipaddress.IPv4Address)
    assert type(info.mtu) is int
    assert out.unit_status == testing.ActiveStatus("250.3.4.0/24 via 250.3.4.1 on fan-250")


def test_change_emits_fans_changed_again_with_the_new_value(requirer_ctx):
    rel = fan_relation(PROVIDER_VECTOR_V1)
    charm, out = run(
        requirer_ctx, requirer_ctx.on.relation_changed(rel, remote_unit=0), testing.State(relations={rel})
    )
    assert charm.seen == [("fans_changed", [FAN_250])]

    rel = dataclasses.replace(
        out.get_relation(rel.id), remote_unit_data={"fans": fans_json(entry(mtu=1400), ENTRY_252)}
    )
    charm, _ = run(
        requirer_ctx,
        requirer_ctx.on.relation_changed(rel, remote_unit=0),
        dataclasses.replace(out, relations={rel}),
    )
    assert charm.seen == [("fans_changed", [dataclasses.replace(FAN_250, mtu=1400), FAN_252])]


def test_joined_with_data_emits_fans_changed(requirer_ctx):
    rel = fan_relation(PROVIDER_VECTOR_V1)
    charm, _ = run(
        requirer_ctx, requirer_ctx.on.relation_joined(rel, remote_unit=0), testing.State(relations={rel})
    )
    assert charm.seen == [("fans_changed", [FAN_250])]


def test_joined_without_data_emits_nothing(requirer_ctx):
    rel = fan_relation(None)
    charm, out = run(
        requirer_ctx, requirer_ctx.on.relation_joined(rel, remote_unit=0), testing.State(relations={rel})
    )
    assert charm.seen == []
    assert out.unit_status == testing.UnknownStatus()


@pytest.mark.parametrize("fans", [None, "", "[]"], ids=["no-key", "empty-string", "empty-list"])
def test_changed_without_fans_emits_fans_removed(requirer_ctx, fans):
    assert changed(requirer_ctx, fans) == [("fans_removed", [])]


def test_relation_broken_emits_fans_removed(requirer_ctx):
    rel = fan_relation(PROVIDER_VECTOR_V1)  # the remote data is still readable while broken
    charm, out = run(requirer_ctx, requirer_ctx.on.relation_broken(rel), testing.State(relations={rel}))
    assert charm.seen == [("fans_removed", [])]
    assert out.unit_status == testing.WaitingStatus("no fan on this machine")


def test_relation_departed_emits_fans_removed_without_the_departing_unit(requirer_ctx):
    rel = fan_relation(PROVIDER_VECTOR_V1)
    event = requirer_ctx.on.relation_departed(rel, remote_unit=0, departing_unit=0)
    charm, _ = run(requirer_ctx, event, testing.State(relations={rel}))
    assert charm.seen == [("fans_removed", [])]
    assert charm.fan.fans == [FAN_250]  # after the event, nothing is excluded any more


def test_broken_or_departed_keeps_the_fans_of_other_relations(requirer_ctx):
    gone = fan_relation(PROVIDER_VECTOR_V1, app="fan-a", unit=1)
    stays = fan_relation(fans_json(ENTRY_252), app="fan-b", unit=0)
    state = testing.State(relations={gone, stays})

    charm, _ = run(requirer_ctx, requirer_ctx.on.relation_broken(gone), state)
    assert charm.seen == [("fans_changed", [FAN_252])]
    charm, _ = run(
        requirer_ctx, requirer_ctx.on.relation_departed(gone, remote_unit=1, departing_unit=1), state
    )
    assert charm.seen == [("fans_changed", [FAN_252])]


def test_units_merge_in_unit_name_order_without_duplicates(requirer_ctx):
    third = entry(segment="250.9.9.0/24", gateway="250.9.9.1")
    rel_b = fan_relation(fans_json(ENTRY_252, ENTRY), app="fan-b", unit=0)
    rel_a = fan_relation(fans_json(ENTRY, third), app="fan-a", unit=7)
    charm, _ = run(
        requirer_ctx,
        requirer_ctx.on.relation_changed(rel_b, remote_unit=0),
        testing.State(relations={rel_b, rel_a}),
    )

    assert charm.seen == [("fans_changed", [FAN_250, info(third), FAN_252])]


def test_unit_order_is_numeric():
    names = ["b/0", "a/10", "a/2", "a/1"]
    assert sorted(names, key=fanlib._unit_key) == ["a/1", "a/2", "a/10", "b/0"]


def test_merged_fans_are_capped(requirer_ctx):
    rel_a = fan_relation(fans_json(*(numbered(i) for i in range(200))), app="fan-a")
    rel_b = fan_relation(fans_json(*(numbered(i) for i in range(200, 400))), app="fan-b")
    charm, _ = run(
        requirer_ctx,
        requirer_ctx.on.relation_changed(rel_a, remote_unit=0),
        testing.State(relations={rel_a, rel_b}),
    )

    ((name, fans),) = charm.seen
    assert name == "fans_changed"
    assert fans == [info(numbered(i)) for i in range(fanlib.MAX_FANS)]


def test_requirer_writes_no_relation_data_and_sets_no_status():
    class Bare(ops.CharmBase):
        def __init__(self, framework: ops.Framework):
            super().__init__(framework)
            self.fan = FanRequirer(self, "fan-in")  # the endpoint name is a parameter
            assert self.fan.relation_name == "fan-in"

    meta = {"name": "bare", "requires": {"fan-in": {"interface": "fan", "scope": "container"}}}
    ctx = testing.Context(Bare, meta=meta)
    rel = testing.SubordinateRelation("fan-in", remote_unit_data={"fans": PROVIDER_VECTOR_V1})
    for event in (ctx.on.relation_changed(rel, remote_unit=0), ctx.on.relation_broken(rel)):
        out = ctx.run(event, testing.State(relations={rel}))
        assert out.unit_status == testing.UnknownStatus()
        assert out.get_relation(rel.id).local_unit_data == rel.local_unit_data
        assert out.get_relation(rel.id).local_app_data == {}
    assert [type(e).__name__ for e in ctx.emitted_events if "Fans" in type(e).__name__] == [
        "FansChangedEvent",
        "FansRemovedEvent",
    ]


# -- malformed provider data: never raises, keeps only the usable entries ----------------

_MANY = [numbered(i) for i in range(1000)]

MALFORMED: list[tuple[str, str, list[FanInfo]]] = [
    ("not-json", "fan-250 250.3.4.0/24", []),
    ("truncated-json", PROVIDER_VECTOR_V1[:-5], []),
    ("trailing-garbage", PROVIDER_VECTOR_V1 + " x", []),
    ("json-null", "null", []),
    ("json-number", "1450", []),
    ("json-string", json.dumps(PROVIDER_VECTOR_V1), []),  # double-encoded
    ("object-not-list", json.dumps(ENTRY), []),
    ("object-of-entries", json.dumps({"fan-250": ENTRY}), []),
    ("list-of-strings", fans_json("250.3.4.0/24", "fan-250"), []),
    ("list-of-scalars", fans_json(1, 2.5, True, None), []),
    ("list-of-lists", fans_json([ENTRY]), []),
    ("mixed-good-and-garbage", fans_json("x", ENTRY, 42, None, [], {}, ENTRY_252), [FAN_250, FAN_252]),
    ("mtu-as-string", fans_json(entry(mtu="1450")), [dataclasses.replace(FAN_250, mtu=None)]),
    (
        "mtu-bool-float-range",
        fans_json(entry(mtu=True), entry(mtu=1450.0, bridge="a"), entry(mtu=9, bridge="b")),
        [
            dataclasses.replace(FAN_250, mtu=None),
            dataclasses.replace(FAN_250, mtu=None, bridge="a"),
            dataclasses.replace(FAN_250, mtu=None, bridge="b"),
        ],
    ),
    ("mtu-nan", PROVIDER_VECTOR_V1.replace("1450", "NaN"), [dataclasses.replace(FAN_250, mtu=None)]),
    ("segment-as-number", fans_json(entry(segment=4194436096)), []),
    ("missing-segment", fans_json(entry(segment=...), ENTRY_252), [FAN_252]),
    ("null-segment", fans_json(entry(segment=None)), []),
    ("missing-gateway", fans_json(entry(gateway=...)), []),
    ("missing-bridge", fans_json(entry(bridge=...)), []),
    ("bad-cidr-prefix", fans_json(entry(segment="250.3.4.0/33")), []),
    ("bad-cidr-octet", fans_json(entry(segment="250.3.400.0/24")), []),
    ("cidr-host-bits", fans_json(entry(segment="250.3.4.1/24")), []),
    ("cidr-netmask-form", fans_json(entry(segment="250.3.4.0/255.255.255.0")), []),
    ("gateway-outside-segment", fans_json(entry(gateway="250.3.5.1")), []),
    ("gateway-bad-octet", fans_json(entry(gateway="250.3.4.256")), []),
    ("gateway-leading-zero", fans_json(entry(gateway="250.3.4.01")), []),
    ("gateway-with-prefix", fans_json(entry(gateway="250.3.4.1/24")), []),
    ("ipv6-segment", fans_json(entry(segment="fd00:250:3:4::/64", gateway="fd00:250:3:4::1")), []),
    (
        "ipv6-underlay-is-dropped",
        fans_json(entry(underlay="fd00::/64")),
        [dataclasses.replace(FAN_250, underlay=None)],
    ),
    ("bridge-too-long", fans_json(entry(bridge="fan-250-is-too-long")), []),
    (
        "bridge-slash-space-empty",
        fans_json(
            entry(bridge="fan/250"), entry(bridge="fan 250"), entry(bridge="fan:250"), entry(bridge="")
        ),
        [],
    ),
    ("bridge-dots", fans_json(entry(bridge="."), entry(bridge="..")), []),
    ("bridge-not-a-string", fans_json(entry(bridge=250)), []),
    ("unicode-bridge", fans_json(entry(bridge="fän-250")), []),
    ("unicode-digits", fans_json(entry(segment="\uff12\uff15\uff10.3.4.0/24")), []),
    (
        "unicode-dataplane-is-kept",
        fans_json(entry(dataplane="vxlän ✓")),
        [dataclasses.replace(FAN_250, dataplane="vxlän ✓")],
    ),
    ("lone-surrogate", '[{"segment": "250.3.4.0/24", "gateway": "250.3.4.1", "bridge": "fan-\\ud800"}]', []),
    (
        "dataplane-wrong-type",
        fans_json(entry(dataplane=["vxlan"]), entry(dataplane="x" * 65, bridge="b")),
        [
            dataclasses.replace(FAN_250, dataplane=None),
            dataclasses.replace(FAN_250, dataplane=None, bridge="b"),
        ],
    ),
    (
        "nested-garbage",
        fans_json(entry(segment={"a": [1, {"b": None}]}, gateway=[[["250.3.4.1"]]]), ENTRY),
        [FAN_250],
    ),
    ("deeply-nested", "[" * 200_000 + "]" * 200_000, []),
    ("huge-integer", "[" + "9" * 5000 + "]", []),
    ("huge-list-of-copies", fans_json(*[ENTRY] * 5_000), [FAN_250]),
    ("valid-entry-after-the-cap", fans_json(*["x"] * fanlib.MAX_FANS, ENTRY), []),
    ("huge-list-capped", fans_json(*_MANY), [info(e) for e in _MANY[: fanlib.MAX_FANS]]),
    ("oversized-payload", "[" + " " * fanlib.MAX_PAYLOAD_CHARS + json.dumps(ENTRY) + "]", []),
]


@pytest.mark.parametrize(("payload", "expected"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_payloads_never_raise_and_keep_valid_entries(requirer_ctx, payload, expected):
    seen = changed(requirer_ctx, payload)
    assert seen == [("fans_changed" if expected else "fans_removed", expected)]


def test_malformed_payloads_are_logged_as_warnings(requirer_ctx, caplog):
    caplog.set_level(logging.WARNING, logger=fanlib.__name__)
    assert changed(requirer_ctx, fans_json("x", ENTRY)) == [("fans_changed", [FAN_250])]
    assert "ignored 1 of 2 `fans` entries" in caplog.text


@pytest.mark.parametrize(
    "data",
    [None, "x", 3, [ENTRY], {}, {"segment": "250.3.4.0/24"}, {"segment": 1, "gateway": 2, "bridge": 3}],
    ids=["null", "string", "number", "list", "empty", "segment-only", "wrong-types"],
)
def test_from_dict_returns_none_for_unusable_entries(data):
    assert FanInfo.from_dict(data) is None


# -- wire format ---------------------------------------------------------------------------


def test_unknown_fields_are_ignored(requirer_ctx):
    extra = {**ENTRY, "vni": 16384000, "peers": [{"unit": "x/1"}], "ünïcode": "✓", "mtu-v6": None}
    assert changed(requirer_ctx, fans_json(extra)) == [("fans_changed", [FAN_250])]


def test_provider_vector_is_pinned():
    assert serialize_fans([FAN_250]) == PROVIDER_VECTOR_V1
    assert serialize_fans([]) == "[]"
    assert json.loads(PROVIDER_VECTOR_V1)[0]["mtu"] == 1450  # a JSON number, not "1450"


def test_wire_entry_has_exactly_the_contract_keys():
    assert list(FAN_250.to_dict()) == list(fanlib.WIRE_KEYS)
    assert list(MINIMAL_FANS[0].to_dict().items()) == [
        ("underlay", None),
        ("overlay", None),
        ("segment", "250.3.4.0/24"),
        ("gateway", "250.3.4.1"),
        ("bridge", "fan-250"),
        ("mtu", None),
        ("dataplane", None),
    ]


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (PROVIDER_VECTOR_V1, [FAN_250]),
        (OLD_VECTOR, OLD_VECTOR_FANS),
        (NEW_VECTOR, [FAN_250]),
        (MINIMAL_VECTOR, MINIMAL_FANS),
    ],
    ids=["v1", "old-charm", "new-provider", "minimal"],
)
def test_requirer_parses_pinned_vectors(requirer_ctx, vector, expected):
    assert parse_fans(vector) == expected
    assert changed(requirer_ctx, vector) == [("fans_changed", expected)]


@pytest.mark.parametrize("fans", [[FAN_250], [FAN_250, FAN_252], MINIMAL_FANS, OLD_VECTOR_FANS])
def test_serialize_then_parse_round_trips(fans):
    assert parse_fans(serialize_fans(fans)) == fans


def test_fan_info_is_frozen_and_hashable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAN_250.mtu = 9000  # type: ignore[misc]
    assert len({FAN_250, dataclasses.replace(FAN_250), FAN_252}) == 2
