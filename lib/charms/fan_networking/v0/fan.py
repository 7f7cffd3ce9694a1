"""The `fan` interface: a machine's FAN overlay details, from `fan-networking` to its principal.

`fan-networking` is a subordinate charm that puts every machine of its principal on a FAN
overlay. A fan-aware principal relates to it over a second, container-scoped endpoint with
interface `fan` and learns, for each fan this machine carries, the overlay segment it owns,
the gateway, the bridge to attach containers to, the MTU to give them and the data plane.

Requirer (an application charm). Declare the endpoint in `charmcraft.yaml`:

```yaml
requires:
  fan:
    interface: fan
    scope: container
    optional: true
```

and, in the charm:

```python
from charms.fan_networking.v0.fan import FanRequirer

class MyCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.fan = FanRequirer(self, relation_name="fan")
        framework.observe(self.fan.on.fans_changed, self._reconcile)
        framework.observe(self.fan.on.fans_removed, self._reconcile)

    def _reconcile(self, _: ops.EventBase) -> None:
        for info in self.fan.fans:  # list[FanInfo], already validated
            # e.g. info.segment == IPv4Network("250.3.4.0/24"), info.bridge == "fan-250"
            attach_workload(bridge=info.bridge, gateway=info.gateway, mtu=info.mtu)
```

Then `juju integrate fan-networking:fan my-app:fan` (besides `fan-networking:juju-info`).

Events (level-triggered, so handlers must be idempotent): after each relation-joined,
-changed, -departed and -broken of the endpoint, `fans_changed` if `fans` (read without the
departing unit or the broken relation) is non-empty, otherwise `fans_removed`; relation-joined
with no fans yet emits nothing. The events carry no data: read `FanRequirer.fans`.

Provider (`fan-networking` itself): `FanProvider(self, "fan").publish(fans)` after every
reconcile; it writes only when the value changes, so an unchanged hook does not wake the
requirer.

Wire format (this unit's databag, key `fans`, a JSON list; new fields may be added, the types
of these never change):

```json
[{"underlay": "10.0.0.0/16", "overlay": "250.0.0.0/8", "segment": "250.3.4.0/24",
  "gateway": "250.3.4.1", "bridge": "fan-250", "mtu": 1450, "dataplane": "vxlan"}]
```

Parsing is tolerant, never raising on what the remote side wrote:

- An entry is usable only with a valid `segment` (IPv4 CIDR string, no host bits), `gateway`
  (IPv4 address string inside the segment) and `bridge` (a Linux interface name: 1 to 15
  printable ASCII characters, no `/`, `:` or whitespace). Entries failing any of these are
  skipped (a warning counts them, the reasons are logged at debug level).
- `underlay`, `overlay` (IPv4 CIDR strings), `mtu` (a JSON integer, 68 to 65535) and
  `dataplane` (a string of at most 64 characters) are optional: missing or invalid values
  become None and the entry is kept.
- Unknown keys are ignored. A payload that is not a JSON list, or longer than
  `MAX_PAYLOAD_CHARS`, yields no fans; at most `MAX_FANS` entries are read.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ops

# The unique Charmhub library identifier, never change it
LIBID = "3e3c15d9bfa6905ed3c0c9c5e0fd17df"

# Increment this major API version when introducing breaking changes
LIBAPI = 0

# Increment this PATCH version before using `charmcraft publish-lib` or reset
# to 0 if you are raising the major API version
LIBPATCH = 1

PYDEPS = ["ops>=3,<4"]

logger = logging.getLogger(__name__)

FANS_KEY = "fans"
WIRE_KEYS = ("underlay", "overlay", "segment", "gateway", "bridge", "mtu", "dataplane")
MAX_FANS = 256  # entries read from, and merged across, remote units
MAX_PAYLOAD_CHARS = 1 << 20  # a larger `fans` value is ignored as a whole
MIN_MTU, MAX_MTU = 68, 65535
MAX_DATAPLANE_CHARS = 64

_CIDR = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$", re.ASCII)
_IFNAME = re.compile(r"^[!-~]{1,15}$", re.ASCII)  # printable ASCII, no space; `/` and `:` below


@dataclasses.dataclass(frozen=True, kw_only=True)
class FanInfo:
    """One fan this machine carries.

    `segment`, `gateway` and `bridge` are always set: they are what a workload needs to join
    the fan. The others are None when the provider did not send them (or sent them invalid).
    """

    underlay: ipaddress.IPv4Network | None = None
    overlay: ipaddress.IPv4Network | None = None
    segment: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    bridge: str
    mtu: int | None = None
    dataplane: str | None = None

    @classmethod
    def from_dict(cls, data: object) -> FanInfo | None:
        """Parse one wire entry; None when it is not usable (the reasons go to the debug log).

        Never raises: unknown keys are ignored, invalid optional fields become None.
        """
        info, problems = _parse_entry(data)
        if problems:
            what = "ignoring unusable fan entry" if info is None else "fan entry"
            logger.debug("%s %s: %s", what, _preview(data), "; ".join(problems))
        return info

    def to_dict(self) -> dict[str, Any]:
        """The wire entry: exactly the `WIRE_KEYS`, in that order; None becomes JSON null."""
        return {
            "underlay": _str_or_none(self.underlay),
            "overlay": _str_or_none(self.overlay),
            "segment": str(self.segment),
            "gateway": str(self.gateway),
            "bridge": self.bridge,
            "mtu": self.mtu,
            "dataplane": self.dataplane,
        }


def parse_fans(raw: str | None) -> list[FanInfo]:
    """The usable entries of one `fans` value, in order, duplicates dropped. Never raises."""
    if raw is None or raw == "":
        return []
    if len(raw) > MAX_PAYLOAD_CHARS:
        logger.warning("ignoring a `fans` value of %d characters (limit %d)", len(raw), MAX_PAYLOAD_CHARS)
        return []
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        logger.warning("ignoring `fans` that is not JSON (%s): %s", type(e).__name__, _preview(raw))
        return []
    if not isinstance(data, list):
        logger.warning("ignoring `fans` that is not a JSON list: %s", _preview(raw))
        return []
    if len(data) > MAX_FANS:
        logger.warning("`fans` has %d entries: reading the first %d", len(data), MAX_FANS)
    parsed = [FanInfo.from_dict(entry) for entry in data[:MAX_FANS]]
    fans = [info for info in parsed if info is not None]
    if len(fans) < len(parsed):
        logger.warning("ignored %d of %d `fans` entries as unusable", len(parsed) - len(fans), len(parsed))
    return _dedupe(fans)


def serialize_fans(fans: Sequence[FanInfo | Mapping[str, Any]]) -> str:
    """The `fans` value for `fans`. Raises ValueError for a mapping that is not a usable entry.

    Mappings are validated like the requirer does and re-emitted as `FanInfo.to_dict()`, so
    the wire always holds exactly `WIRE_KEYS`.
    """
    entries = []
    for item in fans:
        if isinstance(item, FanInfo):
            info = item
        else:
            info, problems = _parse_entry(item)
            if info is None or problems:
                raise ValueError(f"invalid fan entry {_preview(item)}: {'; '.join(problems)}")
        entries.append(info.to_dict())
    return json.dumps(entries)


class FansChangedEvent(ops.EventBase):
    """Usable fans are present (they appeared or may have changed): re-read `FanRequirer.fans`."""


class FansRemovedEvent(ops.EventBase):
    """No usable fan is left: the relation is gone, or the provider published none."""


class FanRequirerEvents(ops.ObjectEvents):
    """Events of `FanRequirer`."""

    fans_changed = ops.EventSource(FansChangedEvent)
    fans_removed = ops.EventSource(FansRemovedEvent)


class FanRequirer(ops.Object):
    """Reads the fans of this machine from the `fan` relation (the principal's side).

    After each relation-joined, -changed, -departed and -broken event of the endpoint it
    re-reads `fans` (without the departing unit or the broken relation) and emits:

    - `fans_changed` when `fans` is non-empty;
    - `fans_removed` when it is empty, except on relation-joined (before the provider has
      written anything, that is no removal).

    The rule is level-triggered: handlers must be idempotent, and may see `fans_changed` for
    unchanged data or `fans_removed` when no fan had been seen yet.
    """

    on = FanRequirerEvents()

    def __init__(self, charm: ops.CharmBase, relation_name: str = "fan"):
        super().__init__(charm, relation_name)
        self._charm = charm
        self._relation_name = relation_name
        self._departing: ops.Unit | None = None
        self._parsed: dict[str, tuple[str | None, list[FanInfo]]] = {}  # unit -> (raw, fans)
        events = charm.on[relation_name]
        self.framework.observe(events.relation_joined, self._on_joined)
        self.framework.observe(events.relation_changed, self._on_changed)
        self.framework.observe(events.relation_departed, self._on_departed)
        self.framework.observe(events.relation_broken, self._on_changed)

    @property
    def relation_name(self) -> str:
        return self._relation_name

    @property
    def fans(self) -> list[FanInfo]:
        """The usable fans of every remote unit, merged in unit-name order, duplicates dropped.

        A container-scoped relation shows the one provider unit on this machine; with more,
        the lists are concatenated by unit (`app/2` before `app/10`), at most `MAX_FANS`.
        """
        per_unit: list[tuple[tuple[str, int, str], list[FanInfo]]] = []
        for relation in self._charm.model.relations[self._relation_name]:
            for unit in relation.units:
                if self._departing is not None and unit.name == self._departing.name:
                    continue
                per_unit.append(
                    (_unit_key(unit.name), self._parse(unit.name, relation.data[unit].get(FANS_KEY)))
                )
        per_unit.sort(key=lambda item: item[0])
        merged = _dedupe(info for _, fans in per_unit for info in fans)
        if len(merged) > MAX_FANS:
            logger.warning("%d fans from remote units: keeping the first %d", len(merged), MAX_FANS)
        return merged[:MAX_FANS]

    def _parse(self, unit: str, raw: str | None) -> list[FanInfo]:
        """`parse_fans(raw)`, remembered per unit for the hook, so bad data is logged once."""
        cached = self._parsed.get(unit)
        if cached is None or cached[0] != raw:
            cached = self._parsed[unit] = (raw, parse_fans(raw))
        return list(cached[1])

    def _on_joined(self, _: ops.RelationJoinedEvent) -> None:
        if self.fans:
            self.on.fans_changed.emit()

    def _on_changed(self, _: ops.RelationEvent) -> None:
        # relation-broken: ops leaves the broken relation out of `model.relations`.
        self._emit()

    def _on_departed(self, event: ops.RelationDepartedEvent) -> None:
        self._departing = event.departing_unit
        try:
            self._emit()
        finally:
            self._departing = None

    def _emit(self) -> None:
        if self.fans:
            self.on.fans_changed.emit()
        else:
            self.on.fans_removed.emit()


class FanProvider(ops.Object):
    """Publishes this machine's fans on every relation of the endpoint (`fan-networking`'s side)."""

    def __init__(self, charm: ops.CharmBase, relation_name: str = "fan"):
        super().__init__(charm, f"{relation_name}-provider")
        self._charm = charm
        self._relation_name = relation_name

    @property
    def relation_name(self) -> str:
        return self._relation_name

    def publish(self, fans: Sequence[FanInfo | Mapping[str, Any]]) -> bool:
        """Write `fans` to this unit's databag on every relation; True if any databag changed.

        Each entry is a `FanInfo` or a wire mapping (validated; ValueError if unusable). An
        empty sequence publishes `[]`: the requirer then has no fans. Databags already holding
        the same value are not written, so no spurious relation-changed follows.
        """
        payload = serialize_fans(fans)
        changed = False
        for relation in self._charm.model.relations[self._relation_name]:
            databag = relation.data[self._charm.unit]
            if databag.get(FANS_KEY) != payload:
                databag[FANS_KEY] = payload
                changed = True
        return changed


# -- parsing ----------------------------------------------------------------------------


def _parse_entry(data: object) -> tuple[FanInfo | None, list[str]]:
    """Parse one entry; returns (info or None, problems found)."""
    if not isinstance(data, Mapping):
        return None, [f"not a JSON object but {type(data).__name__}"]
    problems: list[str] = []
    segment = _network(data, "segment", problems, required=True)
    gateway = _address(data, "gateway", problems)
    bridge = _bridge(data, problems)
    if segment is not None and gateway is not None and gateway not in segment:
        problems.append(f"gateway {gateway} is outside segment {segment}")
        gateway = None
    underlay = _network(data, "underlay", problems)
    overlay = _network(data, "overlay", problems)
    mtu = _mtu(data, problems)
    dataplane = _dataplane(data, problems)
    if segment is None or gateway is None or bridge is None:
        return None, problems
    info = FanInfo(
        underlay=underlay,
        overlay=overlay,
        segment=segment,
        gateway=gateway,
        bridge=bridge,
        mtu=mtu,
        dataplane=dataplane,
    )
    return info, problems


def _network(
    data: Mapping[Any, Any], key: str, problems: list[str], required: bool = False
) -> ipaddress.IPv4Network | None:
    value = data.get(key)
    if value is None:
        if required:
            problems.append(f"{key} missing")
        return None
    if isinstance(value, str) and _CIDR.match(value):
        try:
            return ipaddress.IPv4Network(value)  # strict: host bits set is invalid
        except ValueError:
            pass
    problems.append(f"{key} is not an IPv4 CIDR: {_preview(value)}")
    return None


def _address(data: Mapping[Any, Any], key: str, problems: list[str]) -> ipaddress.IPv4Address | None:
    value = data.get(key)
    if value is None:
        problems.append(f"{key} missing")
        return None
    if isinstance(value, str):
        try:
            return ipaddress.IPv4Address(value)  # ASCII dotted quad only, no leading zeros
        except ValueError:
            pass
    problems.append(f"{key} is not an IPv4 address: {_preview(value)}")
    return None


def _bridge(data: Mapping[Any, Any], problems: list[str]) -> str | None:
    value = data.get("bridge")
    if value is None:
        problems.append("bridge missing")
        return None
    if (
        isinstance(value, str)
        and _IFNAME.match(value)
        and "/" not in value
        and ":" not in value
        and value not in (".", "..")
    ):
        return value
    problems.append(f"bridge is not an interface name: {_preview(value)}")
    return None


def _mtu(data: Mapping[Any, Any], problems: list[str]) -> int | None:
    value = data.get("mtu")
    if value is None:
        return None
    if isinstance(value, int) and MIN_MTU <= value <= MAX_MTU:  # JSON true/false: 1/0, too small
        return value
    problems.append(f"mtu is not an integer from {MIN_MTU} to {MAX_MTU}: {_preview(value)}")
    return None


def _dataplane(data: Mapping[Any, Any], problems: list[str]) -> str | None:
    value = data.get("dataplane")
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= MAX_DATAPLANE_CHARS:
        return value
    problems.append(f"dataplane is not a short string: {_preview(value)}")
    return None


def _dedupe(fans: Iterable[FanInfo]) -> list[FanInfo]:
    return list(dict.fromkeys(fans))


def _unit_key(name: str) -> tuple[str, int, str]:
    """Sort key for unit names: by application, then unit number (`a/2` before `a/10`)."""
    app, _, number = name.rpartition("/")
    return (app, int(number), name) if number.isdigit() else (app, -1, name)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _preview(value: object, limit: int = 60) -> str:
    """A short description for logs: remote data may be huge."""
    if isinstance(value, str):
        return repr(value[:limit]) + (f"... ({len(value)} characters)" if len(value) > limit else "")
    if isinstance(value, (list, dict)):
        return f"a JSON {'list' if isinstance(value, list) else 'object'} of {len(value)} items"
    text = repr(value)  # numbers, booleans, None: short (json caps integer digits)
    return text[:limit]
