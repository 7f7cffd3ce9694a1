"""plan.peer_routes computes in integers for speed; it must match the ipaddress definition exactly."""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

import fan
import plan
from tests.unit.test_fan import PROPERTY, entries


def reference_routes(
    local: plan.LocalFan, peers: list[plan.PeerInfo], direct_routing: bool, machine: str | None
) -> tuple[plan.PeerRoute, ...]:
    """peer_routes as first written, with ipaddress operators and fan.host_segment."""
    underlay = local.mapping.underlay
    claims: dict[ipaddress.IPv4Address, list[plan.PeerInfo]] = defaultdict(list)
    for peer in peers:
        if machine is not None and peer.machine == machine:
            continue
        address = next((a for a in peer.addresses if a in underlay), None)
        if address is None:
            continue
        if address == local.address.ip or (
            underlay.prefixlen < 31 and address in (underlay.network_address, underlay.broadcast_address)
        ):
            continue
        claims[address].append(peer)
    routes = []
    for address, claimants in claims.items():
        if len({p.machine or p.unit for p in claimants}) > 1:
            continue
        direct = direct_routing and address in local.address.network
        routes.append(
            plan.PeerRoute(
                min(p.unit for p in claimants), address, fan.host_segment(local.mapping, address), direct
            )
        )
    return tuple(sorted(routes, key=lambda r: r.segment))


@PROPERTY
@given(entries(), st.data())
def test_peer_routes_match_the_ipaddress_definition(parts: tuple[int, int, int, int], data: st.DataObject):
    underlay, u, overlay, o = parts
    mapping = fan.Mapping(ipaddress.IPv4Network((underlay, u)), ipaddress.IPv4Network((overlay, o)))
    size = 1 << (32 - u)
    in_underlay = st.integers(min_value=0, max_value=size - 1).map(lambda i: underlay + i)
    anywhere = st.integers(min_value=0, max_value=0xFFFFFFFF)
    local_ip = data.draw(in_underlay, label="local")
    local_prefix = data.draw(st.integers(min_value=u, max_value=32), label="local prefix")
    local = plan.LocalFan(
        mapping, ipaddress.IPv4Interface(f"{ipaddress.IPv4Address(local_ip)}/{local_prefix}"), 1450
    )
    # A small pool makes shared claims, the local address and the reserved ends likely.
    pool = st.sampled_from(sorted({underlay, underlay + 1, underlay + size - 1, local_ip}))
    in_underlay = pool | in_underlay
    peers = [
        plan.PeerInfo(
            f"app/{i}",
            data.draw(st.sampled_from([None, "0", "1", "2"]), label="machine"),
            tuple(ipaddress.IPv4Address(a) for a in data.draw(st.lists(in_underlay | anywhere, max_size=3))),
        )
        for i in range(data.draw(st.integers(min_value=0, max_value=12), label="peers"))
    ]
    direct = data.draw(st.booleans(), label="direct")
    machine = data.draw(st.sampled_from([None, "0"]), label="machine")
    assert plan.peer_routes(local, peers, direct, machine) == reference_routes(local, peers, direct, machine)
