"""The charm through ops.testing: every event path, every status, the ubuntu-fan plane.

fanctl and systemctl are fakes on PATH (tests/fakes/fake_tool.py): the real fanctl needs
Ubuntu's FAN-patched kernel and there is no systemd here. The vxlan plane is replaced by
a recording stand-in where a test is about the charm's decisions; it runs for real in
tests/e2e.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from ops import testing

import charm
from tests.unit.conftest import FakeMachine, fan_state, peer_data

UBUNTU_FAN = {"fan-config": "172.16.0.0/16=250.0.0.0/8", "dataplane": "ubuntu-fan"}
EXAMPLE_HINT = "juju config fan-networking fan-config=10.0.0.0/16=250.0.0.0/8"


@pytest.fixture
def fan_kernel(machine: FakeMachine) -> FakeMachine:
    machine.set_fan_kernel(True)
    return machine


def fanctl_calls(machine: FakeMachine) -> list[list[str]]:
    return [c for c in machine.calls() if c[0] == "fanctl"]


# -- ubuntu-fan: the acceptance cases ----------------------------------------------------


def test_ubuntu_fan_active_with_segment_and_rendered_file(ctx, fan_kernel):
    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))

    assert out.unit_status == testing.ActiveStatus("fan 250.3.4.0/24 on fan-250 (ubuntu-fan, mtu 1450)")
    text = fan_kernel.file("/etc/network/fan").read_text()
    assert "250.0.0.0/8 172.16.3.4/16 dhcp bridge fan-250" in text.splitlines()
    assert fanctl_calls(fan_kernel) == [
        ["fanctl", "up", "-u", "172.16.3.4/16", "-o", "250.0.0.0/8", "--bridge=fan-250", "--dhcp"]
    ]
    assert ["systemctl", "enable", "ubuntu-fan.service"] in fan_kernel.calls()
    assert fan_kernel.bridge_up("fan-250")


def test_unchanged_config_runs_no_mutating_command(ctx, fan_kernel):
    state = fan_state(UBUNTU_FAN)
    ctx.run(ctx.on.config_changed(), state)
    fan_kernel.forget_calls()

    out = ctx.run(ctx.on.update_status(), state)

    assert out.unit_status.name == "active"
    assert fan_kernel.mutating() == []


def test_invalid_entry_blocks_naming_it_and_runs_nothing(ctx, fan_kernel):
    ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))
    before = fan_kernel.file("/etc/network/fan").read_text()
    fan_kernel.forget_calls()

    bad = {**UBUNTU_FAN, "fan-config": "172.16.0.0/16=250.0.0.0/8 foobar"}
    out = ctx.run(ctx.on.config_changed(), fan_state(bad))

    assert out.unit_status.name == "blocked"
    assert "foobar" in out.unit_status.message
    assert EXAMPLE_HINT in out.unit_status.message
    assert fan_kernel.calls() == []
    assert fan_kernel.file("/etc/network/fan").read_text() == before
    assert fan_kernel.bridge_up("fan-250"), "the running fan keeps running"


def test_removing_one_of_two_mappings_brings_exactly_that_one_down(ctx, fan_kernel):
    two = {**UBUNTU_FAN, "fan-config": "172.16.0.0/16=250.0.0.0/8 172.16.0.0/16=251.0.0.0/8"}
    out = ctx.run(ctx.on.config_changed(), fan_state(two))
    assert out.unit_status.message.startswith("fans 250.3.4.0/24 on fan-250, 251.3.4.0/24 on fan-251")
    fan_kernel.forget_calls()

    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))

    assert fanctl_calls(fan_kernel) == [["fanctl", "down", "-u", "172.16.3.4/16", "-o", "251.0.0.0/8"]]
    assert fan_kernel.bridge_up("fan-250") and not fan_kernel.bridge_up("fan-251")
    lines = fan_kernel.file("/etc/network/fan").read_text()
    assert "251.0.0.0/8" not in lines and "250.0.0.0/8 172.16.3.4/16" in lines
    assert out.unit_status.name == "active"


def test_changing_one_mapping_leaves_the_other_alone(ctx, fan_kernel):
    two = {**UBUNTU_FAN, "fan-config": "172.16.0.0/16=250.0.0.0/8 172.16.0.0/16=251.0.0.0/8"}
    ctx.run(ctx.on.config_changed(), fan_state(two))
    fan_kernel.forget_calls()

    moved = {**two, "fan-config": "172.16.0.0/16=250.0.0.0/8 172.16.0.0/16=252.0.0.0/8"}
    ctx.run(ctx.on.config_changed(), fan_state(moved))

    assert fanctl_calls(fan_kernel) == [
        ["fanctl", "down", "-u", "172.16.3.4/16", "-o", "251.0.0.0/8"],
        ["fanctl", "up", "-u", "172.16.3.4/16", "-o", "252.0.0.0/8", "--bridge=fan-252", "--dhcp"],
    ]


def test_operator_lines_are_kept_and_block_removed_on_remove(ctx, fan_kernel):
    fan_file = fan_kernel.file("/etc/network/fan")
    fan_file.parent.mkdir(parents=True)
    fan_file.write_text("# my notes\n252.0.0.0/8 10.9.0.0/16 dhcp\n")
    state = fan_state(UBUNTU_FAN)
    ctx.run(ctx.on.config_changed(), state)
    assert fan_file.read_text().startswith("# my notes\n252.0.0.0/8 10.9.0.0/16 dhcp\n# BEGIN fan-networking")

    ctx.run(ctx.on.stop(), state)
    ctx.run(ctx.on.remove(), state)

    assert fan_file.read_text() == "# my notes\n252.0.0.0/8 10.9.0.0/16 dhcp\n"
    assert ["fanctl", "down", "-u", "172.16.3.4/16", "-o", "250.0.0.0/8"] in fanctl_calls(fan_kernel)
    assert not fan_kernel.bridge_up("fan-250")
    assert not fan_kernel.file("/var/lib/fan-networking").exists()


def test_remove_deletes_a_file_that_held_only_the_charm_block(ctx, fan_kernel):
    state = fan_state(UBUNTU_FAN)
    ctx.run(ctx.on.config_changed(), state)
    ctx.run(ctx.on.remove(), state)
    assert not fan_kernel.file("/etc/network/fan").exists()


def test_operator_line_for_the_same_overlay_blocks_without_changes(ctx, fan_kernel):
    fan_file = fan_kernel.file("/etc/network/fan")
    fan_file.parent.mkdir(parents=True)
    fan_file.write_text("250.0.0.0/8 172.16.0.0/16 dhcp\n")

    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))

    assert out.unit_status.name == "blocked"
    assert "250.0.0.0/8 172.16.0.0/16 dhcp" in out.unit_status.message
    assert fanctl_calls(fan_kernel) == []
    assert fan_file.read_text() == "250.0.0.0/8 172.16.0.0/16 dhcp\n"


def test_a_bridge_that_went_away_is_brought_up_again(ctx, fan_kernel):
    state = fan_state(UBUNTU_FAN)
    ctx.run(ctx.on.config_changed(), state)
    fan_kernel.file("/sys/class/net/fan-250").rmdir()  # e.g. someone ran fanctl down
    fan_kernel.forget_calls()

    ctx.run(ctx.on.update_status(), state)

    assert fanctl_calls(fan_kernel) == [
        ["fanctl", "up", "-u", "172.16.3.4/16", "-o", "250.0.0.0/8", "--bridge=fan-250", "--dhcp"]
    ]


def test_dhcp_and_host_reserve_reach_the_file_and_fanctl(ctx, fan_kernel):
    config = {**UBUNTU_FAN, "dhcp": False, "host-reserve": 3}
    ctx.run(ctx.on.config_changed(), fan_state(config))
    assert (
        "250.0.0.0/8 172.16.3.4/16 host-reserve 3 bridge fan-250"
        in fan_kernel.file("/etc/network/fan").read_text().splitlines()
    )
    assert fanctl_calls(fan_kernel)[0][-1] == "--host-reserve=3"
    assert "--dhcp" not in fanctl_calls(fan_kernel)[0]


def test_a_failing_fanctl_is_reported_and_the_next_hook_converges(ctx, fan_kernel, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "fanctl up")
    state = fan_state(UBUNTU_FAN)
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status.name == "blocked"
    assert "could not apply the fan" in out.unit_status.message
    assert "fanctl up" in out.unit_status.message

    monkeypatch.delenv("FAKE_FAIL")
    out = ctx.run(ctx.on.update_status(), state)
    assert out.unit_status == testing.ActiveStatus("fan 250.3.4.0/24 on fan-250 (ubuntu-fan, mtu 1450)")
    assert fan_kernel.bridge_up("fan-250")


def test_missing_fanctl_is_installed_with_apt_and_failure_reported(ctx, fan_kernel, monkeypatch):
    (fan_kernel.root.parent / "bin" / "fanctl").unlink()
    monkeypatch.setenv("FAKE_FAIL", "apt-get")
    monkeypatch.setenv("PATH", f"{fan_kernel.root.parent / 'bin'}:/usr/bin:/bin")  # no real fanctl either
    out = ctx.run(ctx.on.install(), fan_state(UBUNTU_FAN))
    assert out.unit_status.name == "blocked"
    assert "ubuntu-fan" in out.unit_status.message


# -- statuses ------------------------------------------------------------------------


def test_empty_fan_config_blocks_with_an_example(ctx, machine):
    out = ctx.run(ctx.on.install(), fan_state())
    assert out.unit_status == testing.BlockedStatus(f"fan-config is empty: set it, e.g. {EXAMPLE_HINT}")
    assert machine.mutating() == []


def test_ubuntu_fan_on_a_kernel_without_fan_blocks_and_clears(ctx, machine, vxlan_journal):
    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))
    assert out.unit_status.name == "blocked"
    assert "kernel with FAN support" in out.unit_status.message
    assert fanctl_calls(machine) == []

    out = ctx.run(ctx.on.config_changed(), fan_state({**UBUNTU_FAN, "dataplane": "vxlan"}))
    assert out.unit_status == testing.ActiveStatus("fan 250.3.4.0/24 on fan-250 (vxlan, mtu 1450, 0 peers)")


def test_no_address_in_the_underlay_blocks_naming_it(ctx, fan_kernel):
    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN, address="10.1.2.3", cidr="10.1.0.0/16"))
    assert out.unit_status.name == "blocked"
    assert "172.16.0.0/16" in out.unit_status.message
    assert fan_kernel.mutating() == []


def test_a_slash_32_binding_is_skipped_for_a_host_interface(ctx, fan_kernel):
    fan_kernel.set_addresses(("eth1", 9000, ["172.16.9.9/32", "172.16.7.8/16"]))
    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN, address="172.16.9.9", cidr=""))
    # The binding's address has no subnet (a /32), so the host's 172.16.7.8/16 is used.
    assert out.unit_status == testing.ActiveStatus("fan 250.7.8.0/24 on fan-250 (ubuntu-fan, mtu 8950)")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("dataplane", "ipip", "dataplane must be one of auto, ubuntu-fan, vxlan"),
        ("mtu", -1, "mtu must be 0"),
        ("mtu", 1500, "mtu 1500 is outside 576..1450"),
        ("host-reserve", 0, "host-reserve must be at least 1"),
        ("host-reserve", 254, "host-reserve 254 does not fit segment 250.3.4.0/24: use 1 to 253"),
        ("lxd-profile", "no spaces please", "is not a valid LXD profile name"),
        ("fan-config", "2001:db8::/32=2001:db9::/24", "IPv6 is not supported"),
        ("fan-config", "172.16.0.0/16=250.0.0.0/8 172.16.0.0/24=250.1.0.0/16", "overlays overlap"),
    ],
)
def test_bad_options_block_with_a_reason_and_change_nothing(ctx, fan_kernel, option, value, expected):
    out = ctx.run(ctx.on.config_changed(), fan_state({**UBUNTU_FAN, option: value}))
    assert out.unit_status.name == "blocked"
    assert expected in out.unit_status.message
    assert fanctl_calls(fan_kernel) == []


def test_blocked_status_clears_when_the_config_is_fixed(ctx, fan_kernel):
    out = ctx.run(ctx.on.config_changed(), fan_state({**UBUNTU_FAN, "fan-config": "nonsense"}))
    assert out.unit_status.name == "blocked"
    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))
    assert out.unit_status.name == "active"


@pytest.mark.parametrize(
    "event",
    [
        "install",
        "start",
        "config_changed",
        "upgrade_charm",
        "update_status",
        "leader_elected",
        "peer_joined",
        "peer_changed",
        "peer_departed",
        "juju_info_joined",
        "juju_info_changed",
        "fan_joined",
        "fan_changed",
    ],
)
def test_every_event_reconciles(ctx, fan_kernel, event):
    fan_rel = testing.SubordinateRelation("fan", remote_app_name="app")
    state = fan_state(UBUNTU_FAN, peers={1: peer_data("172.16.5.6", "4", True)}, extra_relations=(fan_rel,))
    peers = state.get_relations("fan-peers")[0]
    juju_info = state.get_relations("juju-info")[0]
    events = {
        "install": ctx.on.install(),
        "start": ctx.on.start(),
        "config_changed": ctx.on.config_changed(),
        "upgrade_charm": ctx.on.upgrade_charm(),
        "update_status": ctx.on.update_status(),
        "leader_elected": ctx.on.leader_elected(),
        "peer_joined": ctx.on.relation_joined(peers, remote_unit=1),
        "peer_changed": ctx.on.relation_changed(peers, remote_unit=1),
        "peer_departed": ctx.on.relation_departed(peers, remote_unit=1, departing_unit=1),
        "juju_info_joined": ctx.on.relation_joined(juju_info),
        "juju_info_changed": ctx.on.relation_changed(juju_info),
        "fan_joined": ctx.on.relation_joined(fan_rel),
        "fan_changed": ctx.on.relation_changed(fan_rel),
    }
    out = ctx.run(events[event], state)
    assert out.unit_status == testing.ActiveStatus("fan 250.3.4.0/24 on fan-250 (ubuntu-fan, mtu 1450)")
    assert fan_kernel.bridge_up("fan-250")
    fans = json.loads(out.get_relation(fan_rel.id).local_unit_data["fans"])
    assert fans == [
        {
            "underlay": "172.16.0.0/16",
            "overlay": "250.0.0.0/8",
            "segment": "250.3.4.0/24",
            "gateway": "250.3.4.1",
            "bridge": "fan-250",
            "mtu": 1450,
            "dataplane": "ubuntu-fan",
        }
    ]


# -- peers and the data plane choice ---------------------------------------------------


def test_peer_data_is_published(ctx, fan_kernel):
    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))
    mine = out.get_relations("fan-peers")[0].local_unit_data
    assert json.loads(mine["underlay-addresses"]) == ["172.16.3.4"]
    assert json.loads(mine["machine"]) == "3"
    assert json.loads(mine["fan-kernel"]) is True


@pytest.mark.parametrize(
    ("mine", "peer_kernels", "expected"),
    [
        (True, [True, True], "ubuntu-fan"),
        (True, [True, False], "vxlan"),
        (False, [True], "vxlan"),
        (True, [], "ubuntu-fan"),
    ],
)
def test_leader_chooses_ubuntu_fan_only_if_every_unit_has_it(
    ctx, machine, vxlan_journal, mine, peer_kernels, expected
):
    machine.set_fan_kernel(mine)
    peers = {i + 1: peer_data(f"172.16.5.{i + 1}", str(10 + i), k) for i, k in enumerate(peer_kernels)}
    out = ctx.run(ctx.on.config_changed(), fan_state({"fan-config": UBUNTU_FAN["fan-config"]}, peers=peers))
    app = out.get_relations("fan-peers")[0].local_app_data
    assert json.loads(app["dataplane"]) == expected
    assert f"({expected}, mtu 1450" in out.unit_status.message


def test_peers_that_have_not_reported_do_not_sway_the_choice(ctx, machine):
    machine.set_fan_kernel(True)
    peers = {1: {}}  # joined, nothing written yet
    out = ctx.run(ctx.on.config_changed(), fan_state({"fan-config": UBUNTU_FAN["fan-config"]}, peers=peers))
    assert json.loads(out.get_relations("fan-peers")[0].local_app_data["dataplane"]) == "ubuntu-fan"


def test_non_leader_follows_the_published_choice(ctx, machine, vxlan_journal):
    machine.set_fan_kernel(True)
    config = {"fan-config": UBUNTU_FAN["fan-config"]}
    out = ctx.run(
        ctx.on.config_changed(), fan_state(config, leader=False, app_data={"dataplane": json.dumps("vxlan")})
    )
    assert "(vxlan," in out.unit_status.message
    assert [e[:2] for e in vxlan_journal] == [("prepare", "vxlan"), ("apply", "vxlan")]


def test_non_leader_with_fan_waits_for_the_leader(ctx, machine):
    machine.set_fan_kernel(True)
    out = ctx.run(ctx.on.config_changed(), fan_state({"fan-config": UBUNTU_FAN["fan-config"]}, leader=False))
    assert out.unit_status == testing.WaitingStatus("waiting for the leader to choose the data plane")
    assert machine.mutating() == []


def test_non_leader_without_fan_uses_vxlan_at_once(ctx, machine, vxlan_journal):
    out = ctx.run(ctx.on.config_changed(), fan_state({"fan-config": UBUNTU_FAN["fan-config"]}, leader=False))
    assert out.unit_status.message.endswith("(vxlan, mtu 1450, 0 peers)")


def test_switching_planes_tears_down_the_old_and_keeps_addresses(ctx, fan_kernel, vxlan_journal):
    ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))
    assert fan_kernel.bridge_up("fan-250")

    out = ctx.run(ctx.on.config_changed(), fan_state({**UBUNTU_FAN, "dataplane": "vxlan"}))

    assert ["fanctl", "down", "-u", "172.16.3.4/16", "-o", "250.0.0.0/8"] in fanctl_calls(fan_kernel)
    assert not fan_kernel.file("/etc/network/fan").exists()
    applied = next(e for e in vxlan_journal if e[0] == "apply")[2]
    assert [(str(f.segment), str(f.gateway), f.bridge) for f in applied] == [
        ("250.3.4.0/24", "250.3.4.1", "fan-250")
    ]
    assert out.unit_status.message == "fan 250.3.4.0/24 on fan-250 (vxlan, mtu 1450, 0 peers)"


def test_peers_become_routes_and_hostile_peers_are_ignored(ctx, machine, vxlan_journal):
    peers = {
        1: peer_data("172.16.5.6", "4"),
        2: peer_data("172.16.7.8", "5"),
        3: {"underlay-addresses": '["172.16.7.8; rm -rf /"]', "machine": '"6"'},
        4: {"underlay-addresses": "not json", "machine": "[]"},
        5: peer_data("10.99.0.1", "7"),  # outside the underlay
        6: peer_data("172.16.3.4", "8"),  # claims this machine's address
        7: peer_data("172.16.9.9", "9"),
        8: peer_data("172.16.9.9", "10"),  # conflicting claim to one segment: both ignored
    }
    out = ctx.run(ctx.on.config_changed(), fan_state({"fan-config": UBUNTU_FAN["fan-config"]}, peers=peers))
    fans = next(e for e in vxlan_journal if e[0] == "apply")[2]
    assert [(p.unit, str(p.segment)) for p in fans[0].peers] == [
        ("fan-networking/1", "250.5.6.0/24"),
        ("fan-networking/2", "250.7.8.0/24"),
    ]
    assert out.unit_status.message.endswith("(vxlan, mtu 1450, 2 peers)")


# -- two principals on one machine ------------------------------------------------------


def test_a_second_unit_on_the_machine_defers_to_the_owner(ctx, fan_kernel):
    fan_kernel.add_agent("fan-networking/7")
    owner = fan_kernel.file("/var/lib/fan-networking/owner.json")
    owner.parent.mkdir(parents=True)
    owner.write_text(json.dumps({"owner": "fan-networking/7"}))

    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))

    assert out.unit_status == testing.ActiveStatus("fan-networking/7 configures the fan on this machine")
    assert fan_kernel.mutating() == []
    assert out.get_relations("fan-peers")[0].local_unit_data["underlay-addresses"] == "[]"  # nothing applied


def test_ownership_moves_when_the_owner_is_gone(ctx, fan_kernel):
    owner = fan_kernel.file("/var/lib/fan-networking/owner.json")
    owner.parent.mkdir(parents=True)
    owner.write_text(json.dumps({"owner": "fan-networking/7"}))  # no agent dir: removed

    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))

    assert out.unit_status.name == "active" and "fan 250.3.4.0/24" in out.unit_status.message
    assert json.loads(owner.read_text())["owner"] == "fan-networking/0"


def test_the_owner_hands_over_on_removal_without_teardown(ctx, fan_kernel):
    state = fan_state(UBUNTU_FAN)
    ctx.run(ctx.on.config_changed(), state)
    fan_kernel.add_agent("fan-networking/7")
    fan_kernel.forget_calls()

    ctx.run(ctx.on.stop(), state)
    ctx.run(ctx.on.remove(), state)

    assert fanctl_calls(fan_kernel) == []
    assert fan_kernel.bridge_up("fan-250")
    record = json.loads(fan_kernel.file("/var/lib/fan-networking/owner.json").read_text())
    assert record == {"owner": "fan-networking/7", "departed": ["fan-networking/0"]}


def test_the_last_unit_tears_down_even_if_the_departed_owner_lingers(fan_kernel):
    # fan-networking/0 handed over to /7 and is on its way out; /7 is now removed too.
    ctx7 = testing.Context(charm.FanNetworkingCharm, app_name="fan-networking", unit_id=7, machine_id="3")
    state = fan_state(UBUNTU_FAN)
    fan_kernel.add_agent("fan-networking/0")
    ctx7.run(ctx7.on.config_changed(), state)
    owner = fan_kernel.file("/var/lib/fan-networking/owner.json")
    owner.write_text(json.dumps({"owner": "fan-networking/7", "departed": ["fan-networking/0"]}))

    ctx7.run(ctx7.on.remove(), state)

    assert not fan_kernel.bridge_up("fan-250")


# -- actions -------------------------------------------------------------------------


def test_show_reports_fans_peers_and_kernel(ctx, fan_kernel):
    state = fan_state(UBUNTU_FAN, peers={1: peer_data("172.16.5.6", "4", True)})
    ctx.run(ctx.on.config_changed(), state)

    ctx.run(ctx.on.action("show"), state)

    results = ctx.action_results or {}
    assert results["dataplane"] == "ubuntu-fan"
    assert results["owner"] == "fan-networking/0"
    assert json.loads(results["fans"])[0]["segment"] == "250.3.4.0/24"
    assert json.loads(results["kernel"])["bridges-up"] == ["fan-250"]


def test_check_connectivity_without_a_fan_fails(ctx, machine):
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("check-connectivity"), fan_state())
    assert "carries no fan" in failure.value.message


def test_check_connectivity_reports_each_peer_and_fails_on_unreachable(ctx, machine, vxlan_journal):
    peers = {1: peer_data("172.16.5.6", "4"), 2: peer_data("172.16.7.8", "5")}
    state = fan_state({"fan-config": UBUNTU_FAN["fan-config"]}, peers=peers)
    ctx.run(ctx.on.config_changed(), state)
    # The recording plane applies nothing, so the charm's record is what the action reads.
    ctx.run(ctx.on.action("check-connectivity"), state)
    rows = json.loads((ctx.action_results or {})["peers"])
    assert [(r["unit"], r["loss"], r["reachable"]) for r in rows] == [
        ("fan-networking/1", "0%", True),
        ("fan-networking/2", "0%", True),
    ]
    pings = [c for c in machine.calls() if c[0] == "ping"]
    assert sorted(p[-3:] for p in pings) == [
        ["-I", "250.3.4.1", "250.5.6.1"],
        ["-I", "250.3.4.1", "250.7.8.1"],
    ]

    down = machine.file("/fake/ping-down")
    down.write_text("250.7.8.1\n")
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("check-connectivity"), state)
    assert "fan-networking/2" in failure.value.message
    assert "unreachable" in failure.value.message
    assert "250.5.6.0/24" in failure.value.message  # the table comes with the failure


def test_fan_relation_data_follows_changes(ctx, fan_kernel):
    fan_rel = testing.SubordinateRelation("fan", remote_app_name="app")
    state = fan_state(UBUNTU_FAN, extra_relations=(fan_rel,))
    out = ctx.run(ctx.on.config_changed(), state)
    assert json.loads(out.get_relation(fan_rel.id).local_unit_data["fans"])[0]["mtu"] == 1450

    changed = dataclasses.replace(out, config={**UBUNTU_FAN, "mtu": 1400})
    out = ctx.run(ctx.on.config_changed(), changed)
    assert json.loads(out.get_relation(fan_rel.id).local_unit_data["fans"])[0]["mtu"] == 1400


def test_a_fan_already_up_is_adopted_without_fanctl(ctx, fan_kernel):
    # Juju's model-level fan-config brought fan-250 up; the operator removed its line
    # from /etc/network/fan as the migration guide says, then configured the charm.
    fan_kernel.file("/sys/class/net/fan-250").mkdir(parents=True)

    out = ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))

    assert out.unit_status.name == "active"
    assert fanctl_calls(fan_kernel) == []
    assert "250.0.0.0/8 172.16.3.4/16 dhcp bridge fan-250" in fan_kernel.file("/etc/network/fan").read_text()


def test_auto_stays_on_vxlan_once_chosen(ctx, machine, vxlan_journal):
    machine.set_fan_kernel(True)
    peers = {1: peer_data("172.16.5.6", "4", True)}  # every unit has FAN now
    state = fan_state(
        {"fan-config": UBUNTU_FAN["fan-config"]}, peers=peers, app_data={"dataplane": json.dumps("vxlan")}
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert json.loads(out.get_relations("fan-peers")[0].local_app_data["dataplane"]) == "vxlan"
    assert "(vxlan," in out.unit_status.message
