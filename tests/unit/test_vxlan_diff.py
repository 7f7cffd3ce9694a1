"""The vxlan plane's pure part: the kernel state a plan needs and the commands that get there.

The commands themselves run against a real kernel in tests/e2e; here the arithmetic of
what is asked for is pinned, with the expected lines written out by hand.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given
from hypothesis import strategies as st

import fan
import plan
import vxlan
from tests.unit.test_fan import PROPERTY

MAPPING = fan.parse_fan_config("10.0.0.0/16=250.0.0.0/8")[0]


def local_fan(*peers: tuple[str, bool]) -> plan.LocalFan:
    routes = tuple(
        plan.PeerRoute(f"fan/{i}", ipaddress.IPv4Address(a), fan.host_segment(MAPPING, a), direct)
        for i, (a, direct) in enumerate(peers)
    )
    return plan.LocalFan(MAPPING, ipaddress.IPv4Interface("10.0.3.4/16"), 1450, "eth0", peers=routes)


def lines(batches: vxlan.Batches) -> list[str]:
    return batches.links + batches.fdb + batches.peers


def test_from_nothing_builds_bridge_tunnel_and_one_set_of_entries_per_peer():
    desired = vxlan.desired_state([local_fan(("10.0.5.6", False), ("10.0.7.8", True))])
    batches = vxlan.diff(desired, vxlan.KernelState())
    # Nexthop ids are the segments: 250.5.6.0 = 250*2**24 + 5*2**16 + 6*2**8 = 4194633216,
    # 250.7.8.0 = 4194764800.
    assert lines(batches) == [
        "link add name fan-250 mtu 1450 type bridge",
        "link set dev fan-250 alias fan-networking up",
        "addr replace 250.3.4.1/24 dev fan-250",
        "link add name vx-250 address 02:fa:0a:00:03:04 mtu 1450 type vxlan id 16384000 dstport 8472 "
        "local 10.0.3.4 nolearning",
        "link set dev vx-250 alias fan-networking up",
        "fdb replace 02:fa:0a:00:05:06 dev vx-250 dst 10.0.5.6 self permanent",
        "neigh replace 250.5.6.1 lladdr 02:fa:0a:00:05:06 dev vx-250 nud permanent",
        "nexthop replace id 4194633216 via 250.5.6.1 dev vx-250 onlink proto 250",
        "nexthop replace id 4194764800 via 10.0.7.8 dev eth0 proto 250",
        "route replace 250.5.6.0/24 nhid 4194633216 proto 250",
        "route replace 250.7.8.0/24 nhid 4194764800 proto 250",
    ]
    assert (
        batches.nat is not None and "ip saddr 250.3.4.0/24 ip daddr != 250.0.0.0/8 masquerade" in batches.nat
    )


def test_the_same_state_needs_nothing():
    fans = [local_fan(("10.0.5.6", False), ("10.0.7.8", True))]
    assert len(vxlan.diff(vxlan.desired_state(fans), vxlan.desired_state(fans))) == 0


def test_a_changed_mtu_is_set_in_place_not_recreated():
    before = [local_fan(("10.0.5.6", False))]
    after = [dataclasses.replace(before[0], mtu=1400)]
    batches = vxlan.diff(vxlan.desired_state(after), vxlan.desired_state(before))
    assert lines(batches) == ["link set dev fan-250 mtu 1400", "link set dev vx-250 mtu 1400"]


def test_a_joining_peer_is_four_entries_and_a_leaving_one_four_deletions():
    base = local_fan(("10.0.5.6", False))
    joined = local_fan(("10.0.5.6", False), ("10.0.9.9", False))
    join = vxlan.peer_changes([base], [joined])
    leave = vxlan.peer_changes([joined], [base])
    assert join is not None and leave is not None
    assert (
        lines(join)
        == [
            "fdb replace 02:fa:0a:00:09:09 dev vx-250 dst 10.0.9.9 self permanent",
            "neigh replace 250.9.9.1 lladdr 02:fa:0a:00:09:09 dev vx-250 nud permanent",
            "nexthop replace id 4194896128 via 250.9.9.1 dev vx-250 onlink proto 250",  # 250*2**24 + 9*2**16 + 9*2**8
            "route replace 250.9.9.0/24 nhid 4194896128 proto 250",
        ]
    )
    assert sorted(lines(leave)) == [
        "fdb del 02:fa:0a:00:09:09 dev vx-250 dst 10.0.9.9 self",
        "neigh del 250.9.9.1 dev vx-250",
        "nexthop del id 4194896128",
        "route del 250.9.9.0/24 proto 250",
    ]
    assert join.nat is None and leave.nat is None


def test_anything_but_peers_changing_needs_the_kernel_read():
    base = local_fan(("10.0.5.6", False))
    assert vxlan.peer_changes([base], [dataclasses.replace(base, mtu=1400)]) is None
    assert vxlan.peer_changes([], [base]) is None
    assert vxlan.peer_changes([base], []) is None


ADDRESSES = st.sampled_from([f"10.0.{a}.{b}" for a in (1, 5, 9) for b in (1, 2, 200)])
PEER_SETS = st.lists(st.tuples(ADDRESSES, st.booleans()), max_size=6, unique_by=lambda p: p[0])


@PROPERTY
@given(PEER_SETS, PEER_SETS)
def test_peer_changes_ask_for_what_a_full_diff_asks_for(
    before: list[tuple[str, bool]], after: list[tuple[str, bool]]
):
    # Diffing only the peers that changed must give the commands that diffing the whole
    # states gives (what the kernel would hold if the last apply went through).
    old, new = [local_fan(*before)], [local_fan(*after)]
    fast = vxlan.peer_changes(old, new)
    full = vxlan.diff(vxlan.desired_state(new), vxlan.desired_state(old))
    assert fast is not None
    assert sorted(lines(fast)) == sorted(lines(full))
