"""The `fan` charm library, provider side: what fan-networking writes, and when it writes."""

from __future__ import annotations

import json
from typing import Any

import ops
import pytest
from charms.fan_networking.v0.fan import FanInfo, FanProvider, serialize_fans
from ops import testing

from tests.unit.test_fan_lib import ENTRY, FAN_250, PROVIDER_VECTOR_V1

# The pinned wire vectors live with the requirer's tests: one fan, as entry and as the
# exact bytes the provider must write for [FAN_250] (a byte change would wake every
# requirer after an upgrade).
VECTOR = PROVIDER_VECTOR_V1
RECORD = ENTRY

META = {
    "name": "fan-provider",
    "subordinate": True,
    "requires": {"juju-info": {"interface": "juju-info", "scope": "container"}},
    "provides": {"fan": {"interface": "fan", "scope": "container"}},
}


class ProviderCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.provider = FanProvider(self, relation_name="fan")


@pytest.fixture
def provider_ctx() -> testing.Context[ProviderCharm]:
    return testing.Context(ProviderCharm, meta=META, app_name="fan-networking", unit_id=0)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every relation-data write the charm makes, as (key, value)."""
    calls: list[tuple[str, str]] = []
    original = ops.RelationDataContent.__setitem__

    def spy(self: ops.RelationDataContent, key: str, value: str) -> None:
        calls.append((key, value))
        original(self, key, value)

    monkeypatch.setattr(ops.RelationDataContent, "__setitem__", spy)
    return calls


def fan_rel(app: str, fans: str | None = None) -> testing.SubordinateRelation:
    local = {"egress-subnets": "192.0.2.0/32", "ingress-address": "192.0.2.0", "private-address": "192.0.2.0"}
    if fans is not None:
        local["fans"] = fans
    return testing.SubordinateRelation("fan", remote_app_name=app, local_unit_data=local)


def publish(
    ctx: testing.Context[ProviderCharm], state: testing.State, fans: Any
) -> tuple[bool, testing.State]:
    with ctx(ctx.on.update_status(), state) as mgr:
        changed = mgr.charm.provider.publish(fans)
        return changed, mgr.run()


def test_publish_writes_the_pinned_vector_to_every_relation(provider_ctx, writes):
    principal = testing.SubordinateRelation("juju-info", remote_app_name="ubuntu")
    one, two = fan_rel("app-one"), fan_rel("app-two")
    changed, out = publish(provider_ctx, testing.State(relations={principal, one, two}), [FAN_250])

    assert changed is True
    for rel in (one, two):
        assert out.get_relation(rel.id).local_unit_data["fans"] == VECTOR
        assert out.get_relation(rel.id).local_app_data == {}
    assert "fans" not in out.get_relation(principal.id).local_unit_data
    assert writes == [("fans", VECTOR), ("fans", VECTOR)]
    assert out.unit_status == testing.UnknownStatus()  # the library never sets status


def test_second_publish_with_the_same_data_writes_nothing(provider_ctx, writes):
    one, two = fan_rel("app-one"), fan_rel("app-two")
    _, out = publish(provider_ctx, testing.State(relations={one, two}), [FAN_250])
    writes.clear()

    changed, again = publish(provider_ctx, out, [FAN_250])
    assert changed is False
    assert writes == []
    assert again.get_relation(one.id).local_unit_data == out.get_relation(one.id).local_unit_data


def test_publish_writes_only_relations_holding_another_value(provider_ctx, writes):
    current, stale = fan_rel("app-one", VECTOR), fan_rel("app-two", "[]")
    changed, out = publish(provider_ctx, testing.State(relations={current, stale}), [FAN_250])

    assert changed is True
    assert writes == [("fans", VECTOR)]
    assert out.get_relation(stale.id).local_unit_data["fans"] == VECTOR


def test_publish_nothing_writes_an_empty_list(provider_ctx):
    rel = fan_rel("app-one", VECTOR)
    changed, out = publish(provider_ctx, testing.State(relations={rel}), [])
    assert changed is True
    assert out.get_relation(rel.id).local_unit_data["fans"] == "[]"


def test_publish_without_relations_is_a_no_op(provider_ctx, writes):
    changed, _ = publish(provider_ctx, testing.State(), [FAN_250])
    assert changed is False
    assert writes == []


def test_publish_accepts_wire_mappings_and_keeps_only_the_contract_keys(provider_ctx):
    rel = fan_rel("app-one")
    changed, out = publish(provider_ctx, testing.State(relations={rel}), [{**RECORD, "peers": 5}])
    assert changed is True
    assert out.get_relation(rel.id).local_unit_data["fans"] == VECTOR


def test_publish_on_another_endpoint_name():
    class Other(ops.CharmBase):
        def __init__(self, framework: ops.Framework):
            super().__init__(framework)
            self.provider = FanProvider(self, relation_name="fan-out")

    meta = {
        "name": "other",
        "subordinate": True,
        "provides": {"fan-out": {"interface": "fan", "scope": "container"}},
    }
    ctx = testing.Context(Other, meta=meta)
    rel = testing.SubordinateRelation("fan-out")
    with ctx(ctx.on.update_status(), testing.State(relations={rel})) as mgr:
        assert mgr.charm.provider.relation_name == "fan-out"
        assert mgr.charm.provider.publish([FAN_250]) is True
        out = mgr.run()
    assert out.get_relation(rel.id).local_unit_data["fans"] == VECTOR


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({k: v for k, v in RECORD.items() if k != "segment"}, "segment missing"),
        ({**RECORD, "mtu": "1450"}, "mtu is not an integer"),
        ({**RECORD, "gateway": "250.3.5.1"}, "gateway 250.3.5.1 is outside segment 250.3.4.0/24"),
        ({**RECORD, "bridge": "fan-250-is-too-long"}, "bridge is not an interface name"),
        ({**RECORD, "underlay": "fd00::/64"}, "underlay is not an IPv4 CIDR"),
        ("fan-250", "not a JSON object"),
    ],
    ids=["missing-segment", "mtu-as-string", "gateway-outside", "long-bridge", "ipv6-underlay", "string"],
)
def test_publish_refuses_an_invalid_mapping_and_writes_nothing(provider_ctx, writes, bad, reason):
    rel = fan_rel("app-one", VECTOR)
    with provider_ctx(provider_ctx.on.update_status(), testing.State(relations={rel})) as mgr:
        with pytest.raises(ValueError, match=f"invalid fan entry .*{reason}"):
            mgr.charm.provider.publish([FAN_250, bad])
        out = mgr.run()
    assert writes == []
    assert out.get_relation(rel.id).local_unit_data["fans"] == VECTOR


def test_mtu_is_a_json_number_and_none_is_null():
    entry = json.loads(serialize_fans([FAN_250]))[0]
    assert entry["mtu"] == 1450
    assert type(entry["mtu"]) is int
    minimal = FanInfo(segment=FAN_250.segment, gateway=FAN_250.gateway, bridge="fan-250")
    assert serialize_fans([minimal]) == (
        '[{"underlay": null, "overlay": null, "segment": "250.3.4.0/24", "gateway": "250.3.4.1", '
        '"bridge": "fan-250", "mtu": null, "dataplane": null}]'
    )
