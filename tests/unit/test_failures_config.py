"""Failure suite, bad configuration: generated near-valid `fan-config` values.

The generator is a grammar of almost-right configs: valid entries (underlay=overlay), then
zero to three mutations of the kind operators and scripts produce (truncated CIDRs, IPv6,
overlapping or duplicated mappings, huge and tiny prefixes, the old `:` form, odd
separators, non-ASCII digits and invisible characters, shell metacharacters, pasted
garbage). Whether a value is valid, and which entry is at fault, is decided here by a
small restatement of the rules (Go's `net.ParseCIDR` syntax, Juju's mask rule, and what
cannot work: IPv6, overlaps, segments smaller than /30, unroutable overlays); nothing
expected is computed by the code under test. Where the rules do not decide (a prefix
with leading zeros, ASCII separator characters Python counts as whitespace and Go does
not), only consistency is checked: valid -> Active, invalid -> Blocked.

Every value goes through `parse_fan_config` and `CharmConfig`, and through the real
charm's config-changed on a machine whose fan is running: an invalid one must end in
Blocked with a message that says what is wrong, names the entry and shows a valid
example, with no exception, no command run and no file changed, and the fan still up.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ops import testing

import charm
from fan import FanConfigError, parse_fan_config
from tests.unit.conftest import FakeMachine, fan_state

U32 = 0xFFFFFFFF
EXAMPLE_HINT = "e.g. juju config fan-networking fan-config=10.0.0.0/16=250.0.0.0/8"
BASE = {"fan-config": "172.16.0.0/16=250.0.0.0/8", "dataplane": "ubuntu-fan"}
BASE_STATUS = testing.ActiveStatus("fan 250.3.4.0/24 on fan-250 (ubuntu-fan, mtu 1450)")
EXAMPLES = 600  # per test; both tests see the same grammar

GENERATED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ directory next to the sources
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the rules, restated ---------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_CIDR = re.compile(rf"({_OCTET}(?:\.{_OCTET}){{3}})/([0-9]+)", re.ASCII)
UNROUTABLE = ((0x00000000, 8), (0x7F000000, 8), (0xE0000000, 4))


def _mask(prefix: int) -> int:
    return (U32 << (32 - prefix)) & U32


def _overlaps(a: int, alen: int, b: int, blen: int) -> bool:
    shorter = min(alen, blen)
    return (a & _mask(shorter)) == (b & _mask(shorter))


def _addr(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


@dataclasses.dataclass(frozen=True)
class Defect:
    """Something wrong with a config: the message must say one of `what` and name one of `names`."""

    what: tuple[str, ...]
    names: tuple[str, ...]


@dataclasses.dataclass
class Case:
    text: str
    verdict: str  # "valid", "invalid", or "either" (the rules do not decide)
    expected: list[tuple[str, str]]  # the canonical mappings when valid
    defects: list[Defect]


def _side(token: str, chunk: str) -> tuple[str, tuple[int, int] | None, Defect | None]:
    """("ok" | "either" | "bad", (address, prefix), defect) for one side of an entry."""
    names = tuple(n for n in (token, chunk) if n)
    if ":" in token:
        return "bad", None, Defect(("IPv6", "invalid"), names)
    match = _IPV4_CIDR.fullmatch(token)
    if match is None or int(match.group(2)) > 32:
        return "bad", None, Defect(("invalid",), names)
    address = int(ipaddress.IPv4Address(match.group(1)))
    prefix = int(match.group(2))
    value = (address & _mask(prefix), prefix)
    if len(match.group(2)) > 1 and match.group(2).startswith("0"):
        # Go's ParseCIDR took leading zeros in the prefix, netip.ParsePrefix refuses them.
        return "either", value, Defect(("invalid",), names)
    return "ok", value, None


def judge(chunks: list[str], undecided_separator: bool = False) -> tuple[str, list, list[Defect]]:
    """The verdict on a config split into entries (whitespace already normalised)."""
    defects: list[Defect] = []
    optional: list[Defect] = []
    entries: list[tuple[int, int, int, int, str]] = []
    for chunk in chunks:
        sides = chunk.split("=")
        if len(sides) != 2:
            defects.append(Defect(("invalid",), (chunk,)))
            continue
        parsed = []
        for token in sides:
            kind, value, defect = _side(token, chunk)
            if kind == "bad":
                assert defect is not None
                defects.append(defect)
            elif kind == "either":
                assert defect is not None
                optional.append(defect)
            parsed.append(value)
        if None in parsed:
            continue
        (u_addr, u), (o_addr, o) = parsed  # type: ignore[misc]
        canon = f"{_addr(u_addr)}/{u}={_addr(o_addr)}/{o}"
        entries.append((u_addr, u, o_addr, o, canon))
        if u <= o:
            defects.append(Defect(("underlay mask must be larger",), (canon,)))
        if o + 32 - u > 30:
            defects.append(Defect(("smaller than /30",), (canon,)))
        if _overlaps(u_addr, u, o_addr, o):
            defects.append(Defect(("overlaps its underlay",), (canon,)))
        if any(_overlaps(o_addr, o, n, p) for n, p in UNROUTABLE):
            defects.append(Defect(("cannot be routed",), (canon,)))
    for i, a in enumerate(entries):
        for b in entries[i + 1 :]:
            if a[:4] == b[:4]:
                defects.append(Defect(("listed twice",), (a[4],)))
            if _overlaps(a[2], a[3], b[2], b[3]):
                defects.append(Defect(("overlap",), (a[4], b[4])))
            if _overlaps(a[2], a[3], b[0], b[1]) or _overlaps(b[2], b[3], a[0], a[1]):
                defects.append(Defect(("overlap",), (a[4], b[4])))
            if a[2] >> 8 == b[2] >> 8:
                defects.append(Defect(("VXLAN id",), (a[4], b[4])))
    expected = [(f"{_addr(e[0])}/{e[1]}", f"{_addr(e[2])}/{e[3]}") for e in entries]
    if defects:
        return "invalid", expected, defects + optional
    if optional or undecided_separator:
        return "either", expected, optional
    return "valid", expected, []


# -- the grammar -----------------------------------------------------------------------------

IPV6 = [
    "2001:db8::/32",
    "fd00::/8",
    "fe80::/10",
    "::/0",
    "::ffff:10.0.0.0/112",
    "2001:db8:0:0:0:0:0:0/48",
    "fd00:250::/24",
]
# Whitespace by both Python's str.split and Go's unicode.IsSpace: lenient, so separators.
SEPARATORS = [" ", "  ", "\t", "\n", "\r\n", " \t\n ", "\x0b", "\x0c", "\u00a0", "\u2003", "\u3000", "\u0085"]
# Python splits on these, Go's strings.Fields does not: the rules do not decide.
UNDECIDED_SEPARATORS = ["\x1c", "\x1d", "\x1e", "\x1f"]
# Not whitespace anywhere: neighbouring entries run together.
JUNK_SEPARATORS = [",", ";", "|", "&&", "\u200b", "\ufeff", "/", "+", "\\", "`", "$", ", ", "; ", " ,"]
SHELL = ["$(reboot)", "`id`", ";reboot", "&&true", "|sh", ">/etc/passwd", "$IFS", "'", '"', "\\"]
JUNK_CHARS = (
    "abcxyzXZ!@#%^&*()[]{}<>?,;|`'\"\\~_-+"
    "\u0663\u0661\uff10\uff11\uff0e\u3002\u0660\u06f1"  # non-ASCII digits and dots
    "\u041e\u0430\u00b9\u00b2\u2070"  # a Cyrillic O and a, superscript digits
    "\u200b\u200d\ufeff\u0301\u202e\u00ad"  # invisible, combining and bidi characters
    "\U0001f600\x07\x1b\x7f"  # emoji and control characters
)
_TOKEN_CHARS = st.sampled_from(JUNK_CHARS)
# An entry under construction: [underlay token, overlay token].
Entry = list


@st.composite
def numeric_entry(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """(underlay, u, overlay, o): usually valid, sometimes not (the oracle says which)."""
    o = draw(st.one_of(st.sampled_from([8, 8, 8, 16, 16, 12, 10, 20, 24]), st.integers(4, 28)))
    u = min(32, o + draw(st.one_of(st.sampled_from([8, 8, 16, 4]), st.integers(2, 22))))
    first = draw(st.one_of(st.integers(240, 254), st.integers(1, 223)))
    overlay = ((first << 24) | draw(st.integers(0, 0xFFFFFF))) & _mask(o)
    base = draw(st.sampled_from([0x0A000000, 0xAC100000, 0xC0A80000, 0x64400000]))
    underlay = base | draw(st.integers(0, 0xFFFFF))
    if draw(st.booleans()):
        underlay &= _mask(u)  # most people write network addresses; host bits are masked
    return underlay, u, overlay, o


def cidr(address: int, prefix: int | str) -> str:
    return f"{_addr(address)}/{prefix}"


@st.composite
def base_entries(draw: st.DrawFn) -> list[Entry]:
    count = draw(st.one_of(st.sampled_from([1, 1, 2, 2, 3]), st.integers(1, 6)))
    entries = []
    for _ in range(count):
        underlay, u, overlay, o = draw(numeric_entry())
        entries.append([cidr(underlay, u), cidr(overlay, o)])
    return entries


@st.composite
def mutated_token(draw: st.DrawFn, token: str) -> str:
    """A token as a typo, a truncation, a paste or a bad idea makes it."""
    address, _, prefix = token.partition("/")
    octets = address.split(".")
    kind = draw(
        st.sampled_from(
            [
                "truncate",
                "no-prefix",
                "empty-prefix",
                "big-prefix",
                "signed-prefix",
                "netmask",
                "octet",
                "octets",
                "char",
                "insert",
                "ipv6",
                "shell",
                "zone",
                "slashes",
                "garbage",
                "huge",
                "leading-zero-prefix",
                "empty",
            ]
        )
    )
    event(f"token mutation: {kind}")
    if kind == "truncate":
        return token[: draw(st.integers(0, max(0, len(token) - 1)))]
    if kind == "no-prefix":
        return address
    if kind == "empty-prefix":
        return f"{address}/"
    if kind == "big-prefix":
        return f"{address}/{draw(st.sampled_from(['33', '40', '64', '128', '255', '4294967296', '9' * 30]))}"
    if kind == "signed-prefix":
        return f"{address}/{draw(st.sampled_from(['-1', '+8', '-0', '8.0', '8 ', '0x10']))}".strip()
    if kind == "netmask":
        return f"{address}/{draw(st.sampled_from(['255.255.0.0', '255.0.0.0', '0.0.255.255']))}"
    if kind == "octet":
        i = draw(st.integers(0, len(octets) - 1))
        octets[i] = draw(st.sampled_from(["256", "300", "999", "1000", "-1", "010", "00", "0x0a", "", "1e2"]))
        return ".".join(octets) + f"/{prefix}"
    if kind == "octets":
        shapes = [octets[:3], [*octets, "0"], octets[:2], octets[:1]]
        return ".".join(draw(st.sampled_from(shapes))) + f"/{prefix}"
    if kind == "char" and token:
        i = draw(st.integers(0, len(token) - 1))
        return token[:i] + draw(_TOKEN_CHARS) + token[i + 1 :]
    if kind == "insert":
        i = draw(st.integers(0, len(token)))
        return token[:i] + draw(st.text(_TOKEN_CHARS, min_size=1, max_size=3)) + token[i:]
    if kind == "ipv6":
        return draw(st.sampled_from(IPV6))
    if kind == "shell":
        payload = draw(st.sampled_from(SHELL))
        return draw(st.sampled_from([token + payload, payload + token, payload]))
    if kind == "zone":
        return f"{address}%eth0/{prefix}"
    if kind == "slashes":
        return draw(
            st.sampled_from([f"{address}//{prefix}", f"{address}/{prefix}/8", f"{address}./{prefix}"])
        )
    if kind == "garbage":
        return draw(st.text(_TOKEN_CHARS, min_size=1, max_size=24))
    if kind == "huge":
        return draw(st.sampled_from(["A", "9", "\u0663", "0."])) * draw(st.integers(200, 5000))
    if kind == "leading-zero-prefix":
        return f"{address}/0{prefix}"
    return ""  # "empty", or "char" on an empty token


@st.composite
def semantic_change(draw: st.DrawFn, entries: list[Entry]) -> None:
    """Keep the syntax, break (or not) the meaning: prefixes, swaps, overlaps, collisions."""
    whole = [i for i, e in enumerate(entries) if len(e) == 2]  # not those already broken
    if not whole:
        return
    i = draw(st.sampled_from(whole))
    entry = entries[i]
    kind = draw(
        st.sampled_from(["prefix", "swap", "self-overlap", "unroutable", "first-octet", "copy", "vni"])
    )
    event(f"semantic mutation: {kind}")
    side = draw(st.integers(0, 1))
    address = entry[side].split("/")[0]
    if kind == "prefix" and _IPV4_CIDR.fullmatch(entry[side]):
        entry[side] = (
            f"{address}/{draw(st.one_of(st.sampled_from([0, 1, 2, 30, 31, 32]), st.integers(0, 32)))}"
        )
    elif kind == "swap":
        entry.reverse()
    elif kind == "self-overlap":
        entry[1] = entry[0]
    elif kind == "unroutable":
        first = draw(st.sampled_from([0, 127, 224, 230, 239]))
        entry[1] = f"{first}.{draw(st.integers(0, 255))}.0.0/{draw(st.sampled_from([8, 12, 16]))}"
    elif kind == "first-octet":
        entry[1] = f"{draw(st.integers(0, 255))}.0.0.0/{draw(st.sampled_from([4, 6, 8, 16]))}"
    elif kind == "copy":
        j = draw(st.sampled_from(whole))
        entries.append(list(entries[j]) if draw(st.booleans()) else [entries[j][0], entries[i][1]])
    elif kind == "vni" and _IPV4_CIDR.fullmatch(entry[1]):
        # Two overlays longer than /24 in one /24: the same VXLAN id.
        top = draw(st.integers(0xF00000, 0xFEFFFF)) << 8
        entry[1] = cidr(top, 26)
        entries.append([cidr(0x0A630000, 30), cidr(top | 0x80, 26)])


@st.composite
def fan_configs(draw: st.DrawFn) -> Case:
    entries = draw(base_entries())
    mutations = draw(st.sampled_from([0, 1, 1, 1, 1, 2, 2, 3]))
    for _ in range(mutations):
        kind = draw(st.sampled_from(["token", "token", "token", "semantic", "semantic", "structure"]))
        whole = [i for i, e in enumerate(entries) if len(e) == 2]  # not those already broken
        if not whole:
            break
        if kind == "token":
            entry = entries[draw(st.sampled_from(whole))]
            side = draw(st.integers(0, 1))
            entry[side] = draw(mutated_token(entry[side]))
        elif kind == "semantic":
            draw(semantic_change(entries))
        else:
            i = draw(st.sampled_from(whole))
            how = draw(
                st.sampled_from(["no-equals", "colon", "double", "extra", "fullwidth", "arrow", "many"])
            )
            event(f"structure mutation: {how}")
            if how == "many":
                for _ in range(draw(st.integers(8, 30))):
                    underlay, u, overlay, o = draw(numeric_entry())
                    entries.append([cidr(underlay, u), cidr(overlay, o)])
            else:
                joiner = {
                    "no-equals": draw(st.sampled_from([" ", ""])),
                    "colon": ":",
                    "double": "==",
                    "fullwidth": "\uff1d",
                    "arrow": "=>",
                    "extra": "=",
                }[how]
                tail = "=250.0.0.0/8" if how == "extra" else ""
                # A single string stands for an entry whose structure is already broken.
                entries[i] = [entries[i][0] + joiner + entries[i][1] + tail]
    # An entry is two tokens, or one string whose structure a mutation already broke.
    texts = ["=".join(e) if len(e) == 2 else e[0] for e in entries]
    # Split pieces on whitespace, as any reader of the text would; then join some with junk.
    chunks = [piece for chunk in texts for piece in chunk.split()]
    chunks = [c for c in chunks if c] or ["="]
    merged: list[str] = [chunks[0]]
    for chunk in chunks[1:]:
        if draw(st.integers(0, 9)) == 0:
            junk = draw(st.sampled_from(JUNK_SEPARATORS))
            event("junk separator")
            pieces = (merged.pop() + junk + chunk).split()
            merged.extend(pieces)
        else:
            merged.append(chunk)
    if draw(st.integers(0, 11)) == 0:
        merged[-1] += draw(st.sampled_from([",", ";", "\u200b", "#"]))
    undecided = False
    separators = []
    for _ in merged[1:]:
        if draw(st.integers(0, 14)) == 0:
            separators.append(draw(st.sampled_from(UNDECIDED_SEPARATORS)))
            undecided = True
        else:
            separators.append(draw(st.sampled_from(SEPARATORS)))
    raw = [_pad_equals(draw, chunk) for chunk in merged]
    text = draw(st.sampled_from(["", "", " ", "\n", "\t ", "\u00a0"]))
    for i, chunk in enumerate(raw):
        text += (separators[i - 1] if i else "") + chunk
    text += draw(st.sampled_from(["", "", "\n", " ", "\r\n", "\u3000"]))
    # Whitespace around `=` is lenient, so a chunk starting with `=` (or following one that
    # ends with it) belongs to its neighbour's entry, whatever whitespace separates them.
    entries_read: list[str] = []
    for chunk in merged:
        if entries_read and (chunk.startswith("=") or entries_read[-1].endswith("=")):
            entries_read[-1] += chunk
        else:
            entries_read.append(chunk)
    verdict, expected, defects = judge(entries_read, undecided)
    event(verdict)
    return Case(text, verdict, expected, defects)


def _pad_equals(draw: st.DrawFn, chunk: str) -> str:
    """Whitespace around `=`, which the charm accepts, where it cannot join two entries."""
    if "=" not in chunk or chunk.startswith("=") or chunk.endswith("=") or "==" in chunk:
        return chunk
    if draw(st.integers(0, 4)):
        return chunk
    pad = st.sampled_from(["", " ", "  ", "\t", " \n"])
    return "=".join(draw(pad) + part + draw(pad) for part in chunk.split("=")).strip()


# -- what a useful message is ----------------------------------------------------------------


def shown(name: str) -> str:
    """How `name` appears in a status message: invisible characters escaped, long words cut."""
    visible = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)
    return visible[:40]


def explains(message: str, defects: list[Defect], escaped: bool) -> bool:
    """Whether `message` says one of the things wrong and names the entry it is wrong in."""
    for defect in defects:
        says = any(w.lower() in message.lower() for w in defect.what)
        names = any((shown(n) if escaped else n) in message for n in defect.names)
        if says and names:
            return True
    return False


# -- the tests -------------------------------------------------------------------------------


def test_generated_configs_parse_as_the_rules_say() -> None:
    seen: collections.Counter[str] = collections.Counter()

    @GENERATED
    @given(fan_configs())
    def check(case: Case) -> None:
        seen[case.verdict] += 1
        try:
            mappings = parse_fan_config(case.text)
        except FanConfigError as e:
            assert case.verdict != "valid", f"{case.text!r} is valid, yet: {e}"
            assert explains(str(e), case.defects, escaped=False), (
                f"{case.text!r}: {e} does not explain any of {case.defects}"
            )
            with pytest.raises(ValueError, match="invalid"):
                charm.CharmConfig(fan_config=case.text)
            return
        assert case.verdict != "invalid", f"{case.text!r} should fail: {case.defects}"
        got = [(str(m.underlay), str(m.overlay)) for m in mappings]
        assert got == case.expected
        assert charm.CharmConfig(fan_config=case.text).mappings == mappings

    check()
    assert sum(seen.values()) >= 500
    assert seen["invalid"] >= 350 and seen["valid"] >= 10, seen  # the grammar still makes both


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (content) and directory (None) under the machine's root."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def test_generated_configs_through_config_changed_block_and_change_nothing(
    ctx: testing.Context, machine: FakeMachine
) -> None:
    machine.set_fan_kernel(True)
    out = ctx.run(ctx.on.config_changed(), fan_state(BASE))
    assert out.unit_status == BASE_STATUS
    baseline = _snapshot(machine.root)
    machine.forget_calls()
    seen: collections.Counter[str] = collections.Counter()

    @GENERATED
    @given(fan_configs())
    def check(case: Case) -> None:
        try:
            parse_fan_config(case.text)
            valid = True
        except FanConfigError:
            valid = False
        assert case.verdict == "either" or valid == (case.verdict == "valid")
        out = ctx.run(ctx.on.config_changed(), fan_state({**BASE, "fan-config": case.text}))
        status = out.unit_status
        if valid:
            seen["valid"] += 1
            assert not status.message.startswith("invalid config"), (case.text, status)
            if _snapshot(machine.root) != baseline:  # applied: back to the base for the next
                back = ctx.run(ctx.on.config_changed(), fan_state(BASE))
                assert back.unit_status == BASE_STATUS
                assert _snapshot(machine.root) == baseline
            machine.forget_calls()
            return
        seen["invalid"] += 1
        message = status.message
        assert status.name == "blocked", (case.text, status)
        assert message.startswith("invalid config: ") and message.endswith(EXAMPLE_HINT), message
        assert message.isprintable() and len(message) <= 1000, message
        assert explains(message, case.defects, escaped=True), (
            f"{case.text!r}: {message!r} does not explain any of {case.defects}"
        )
        assert machine.calls() == [], f"{case.text!r} ran commands"
        assert _snapshot(machine.root) == baseline, f"{case.text!r} changed files"
        assert machine.bridge_up("fan-250")

    check()
    assert seen["invalid"] >= 450, seen
    # The running fan survived every one of them: a plain hook finds nothing to do.
    out = ctx.run(ctx.on.update_status(), fan_state(BASE))
    assert out.unit_status == BASE_STATUS
    assert machine.mutating() == []


@pytest.mark.parametrize(
    ("text", "what", "named"),
    [
        ("172.16.0/16=250.0.0.0/8", "invalid CIDR address", "172.16.0/16"),
        ("172.16.0.0/16=250.0.0.0/", "invalid CIDR address", "250.0.0.0/"),
        ("172.16.0.0/16:250.0.0.0/8", "old underlay:overlay form", "172.16.0.0/16:250.0.0.0/8"),
        ("2001:db8::/32=fd00::/8", "IPv6 is not supported", "2001:db8::/32=fd00::/8"),
        ("172.16.0.0/16=250.0.0.0/8 172.16.0.0/16=250.0.0.0/8", "listed twice", "172.16.0.0/16=250.0.0.0/8"),
        ("172.16.0.0/16=250.0.0.0/8 10.0.0.0/24=250.1.0.0/16", "overlap", "10.0.0.0/24=250.1.0.0/16"),
        ("172.16.0.0/24=250.0.0.0/23", "smaller than /30", "172.16.0.0/24=250.0.0.0/23"),
        ("172.16.0.0/8=250.0.0.0/16", "underlay mask must be larger", "172.0.0.0/8=250.0.0.0/16"),
        ("172.16.0.0/16=127.0.0.0/8", "cannot be routed", "172.16.0.0/16=127.0.0.0/8"),
        ("172.16.0.0/16=250.0.0.0/8,10.0.0.0/16=251.0.0.0/8", "invalid", "250.0.0.0/8,10.0.0.0/16"),
        ("172.16.0.0/16=250.0.0.0/8;reboot", "invalid CIDR address", "250.0.0.0/8;reboot"),
        ("172.16.0.0/16=$(reboot)", "invalid CIDR address", "$(reboot)"),
        ("\uff11\uff17\uff12.16.0.0/16=250.0.0.0/8", "invalid CIDR address", "\uff11\uff17\uff12.16.0.0/16"),
        # Invisible characters are shown escaped, so the operator can see what is wrong.
        ("172.16.0.0/16=250.0.0.0/8\u200b", "invalid CIDR address", "250.0.0.0/8\\u200b"),
        ("\ufeff172.16.0.0/16=250.0.0.0/8", "invalid CIDR address", "\\ufeff172.16.0.0/16"),
        ("172.16.0.0/16=250.0.0.0/8\x1b[31m", "invalid CIDR address", "250.0.0.0/8\\x1b[31m"),
        # Whitespace around `=` (\x1c is whitespace to Python) joins the entries it separates.
        (
            "10.0.0.0/16=240.0.0.0/8\x1c=240.0.0.0/8,10.0.0.0/16",
            "invalid FAN config entry",
            "240.0.0.0/8=240.0.0.0/8,",
        ),
        # Pasted garbage is cut short, and the example still comes through.
        ("172.16.0.0/16=" + "A" * 5000, "invalid CIDR address", "A" * 40),
    ],
)
def test_bad_config_messages_say_what_and_where(
    ctx: testing.Context, machine: FakeMachine, text: str, what: str, named: str
) -> None:
    machine.set_fan_kernel(True)
    ctx.run(ctx.on.config_changed(), fan_state(BASE))
    machine.forget_calls()
    before = _snapshot(machine.root)

    out = ctx.run(ctx.on.config_changed(), fan_state({**BASE, "fan-config": text}))

    message = out.unit_status.message
    assert out.unit_status.name == "blocked"
    assert what in message and named in message, message
    assert message.endswith(EXAMPLE_HINT)
    assert message.isprintable() and len(message) <= 1000
    assert machine.calls() == []
    assert _snapshot(machine.root) == before
