"""Failure suite, failures mid-apply: a command failing halfway, a missing tool, a full disk.

The charm must say in its status what failed, leave nothing half-configured recorded as
done (the boot path re-applies what `applied.json` records), and converge on the next hook
once the failure is gone. Here with the fake tools (tests/fakes/fake_tool.py: FAKE_FAIL
makes a command fail, FAKE_FAIL_SKIP lets the first matching calls through); the e2e
failure suite does the same on a real kernel, where the containers must reach each other
again, and fills a real filesystem.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import sys
from pathlib import Path

import pytest
from ops import testing

import machine as machine_module
from tests.unit.conftest import FakeMachine, fan_state, peer_data

VXLAN = {"fan-config": "172.16.0.0/16=250.0.0.0/8", "dataplane": "vxlan"}
UBUNTU_FAN = {"fan-config": "172.16.0.0/16=250.0.0.0/8", "dataplane": "ubuntu-fan"}
TWO_FANS = {**UBUNTU_FAN, "fan-config": "172.16.0.0/16=250.0.0.0/8 172.16.0.0/16=251.0.0.0/8"}
APPLIED = "/var/lib/fan-networking/applied.json"
PEER_1 = {1: peer_data("172.16.5.6", "4")}
PEERS_1_2 = {**PEER_1, 2: peer_data("172.16.7.8", "5")}
_REAL_WRITE_TEXT = machine_module.Machine.write_text


def applied_peers(machine: FakeMachine) -> list[str] | None:
    """The peers' underlay addresses `applied.json` records (None: no record)."""
    path = machine.file(APPLIED)
    if not path.exists():
        return None
    return sorted(p["underlay"] for f in json.loads(path.read_text())["fans"] for p in f["peers"])


def batches(machine: FakeMachine) -> list[list[str]]:
    return [c for c in machine.calls() if c[1:2] == ["-batch"] or c[:2] == ["nft", "-f"]]


def only_python_on(monkeypatch: pytest.MonkeyPatch, machine: FakeMachine) -> Path:
    """PATH = the fakes' directory and a python3 for them, nothing else: no real tool is found."""
    python_dir = machine.root.parent / "python-only"
    python_dir.mkdir(exist_ok=True)
    if not (python_dir / "python3").exists():
        (python_dir / "python3").symlink_to(sys.executable)
    bin_dir = machine.root.parent / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{python_dir}")
    return bin_dir


# -- a command failing halfway -------------------------------------------------------------


def test_the_second_ip_batch_failing_is_reported_and_the_next_hook_converges(ctx, machine, monkeypatch):
    state = fan_state(VXLAN, peers=PEER_1)
    monkeypatch.setenv("FAKE_FAIL", "ip -batch")
    monkeypatch.setenv("FAKE_FAIL_SKIP", "1")  # links go in, the peers' routes do not

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status.name == "blocked"
    message = out.unit_status.message
    assert message.startswith("could not apply the fan: `ip -batch -` failed: exit 1: ip: injected failure")
    assert message.endswith("(retried on every hook)")
    assert [c[:2] for c in batches(machine)] == [["ip", "-batch"], ["bridge", "-batch"], ["ip", "-batch"]]
    assert applied_peers(machine) is None, "a half-applied fan must not be recorded for the boot path"

    monkeypatch.delenv("FAKE_FAIL")
    out = ctx.run(ctx.on.update_status(), state)

    assert out.unit_status == testing.ActiveStatus("fan 250.3.4.0/24 on fan-250 (vxlan, mtu 1450, 1 peer)")
    assert applied_peers(machine) == ["172.16.5.6"]


def test_bridge_failing_once_for_a_new_peer_keeps_the_old_record_until_it_converges(
    ctx, machine, monkeypatch
):
    fan_rel = testing.SubordinateRelation("fan", remote_app_name="app")
    out = ctx.run(ctx.on.config_changed(), fan_state(VXLAN, peers=PEER_1, extra_relations=(fan_rel,)))
    assert applied_peers(machine) == ["172.16.5.6"]
    fan_rel = dataclasses.replace(fan_rel, local_unit_data=out.get_relation(fan_rel.id).local_unit_data)
    monkeypatch.setenv("FAKE_FAIL", "bridge -batch")

    out = ctx.run(ctx.on.config_changed(), fan_state(VXLAN, peers=PEERS_1_2, extra_relations=(fan_rel,)))

    assert out.unit_status.name == "blocked"
    assert "`bridge -batch -` failed: exit 1: bridge: injected failure" in out.unit_status.message
    assert applied_peers(machine) == ["172.16.5.6"], "the record stays what was fully applied"
    fans = json.loads(out.get_relation(fan_rel.id).local_unit_data["fans"])
    assert [f["segment"] for f in fans] == ["250.3.4.0/24"], "the fan relation keeps the fan"

    monkeypatch.delenv("FAKE_FAIL")
    out = ctx.run(ctx.on.update_status(), fan_state(VXLAN, peers=PEERS_1_2, extra_relations=(fan_rel,)))

    assert out.unit_status.message.endswith("(vxlan, mtu 1450, 2 peers)")
    assert applied_peers(machine) == ["172.16.5.6", "172.16.7.8"]


def test_fanctl_failing_for_the_second_mapping_leaves_the_first_up_and_converges(ctx, machine, monkeypatch):
    machine.set_fan_kernel(True)
    monkeypatch.setenv("FAKE_FAIL", "fanctl up -u 172.16.3.4/16 -o 251.0.0.0/8")

    out = ctx.run(ctx.on.config_changed(), fan_state(TWO_FANS))

    assert out.unit_status.name == "blocked"
    assert (
        "`fanctl up -u 172.16.3.4/16 -o 251.0.0.0/8 --bridge=fan-251 --dhcp` failed"
        in out.unit_status.message
    )
    assert machine.bridge_up("fan-250") and not machine.bridge_up("fan-251")

    monkeypatch.delenv("FAKE_FAIL")
    machine.forget_calls()
    out = ctx.run(ctx.on.update_status(), fan_state(TWO_FANS))

    assert out.unit_status.message.startswith("fans 250.3.4.0/24 on fan-250, 251.3.4.0/24 on fan-251")
    assert machine.bridge_up("fan-251")
    fanctl = [c for c in machine.calls() if c[0] == "fanctl"]
    assert fanctl == [
        ["fanctl", "up", "-u", "172.16.3.4/16", "-o", "251.0.0.0/8", "--bridge=fan-251", "--dhcp"]
    ]


def test_a_failing_teardown_fails_the_hook_and_its_retry_removes_everything(ctx, machine, monkeypatch):
    machine.set_fan_kernel(True)
    state = fan_state(UBUNTU_FAN)
    ctx.run(ctx.on.config_changed(), state)
    monkeypatch.setenv("FAKE_FAIL", "fanctl down")

    # Juju retries a failed remove hook; the records it needs to finish must still be there.
    with pytest.raises(testing.errors.UncaughtCharmError, match="fanctl down"):
        ctx.run(ctx.on.remove(), state)
    assert machine.file(APPLIED).exists()
    assert "# BEGIN fan-networking" in machine.file("/etc/network/fan").read_text()

    monkeypatch.delenv("FAKE_FAIL")
    ctx.run(ctx.on.remove(), state)

    assert not machine.bridge_up("fan-250")
    assert not machine.file("/etc/network/fan").exists()
    assert not machine.file("/var/lib/fan-networking").exists()


# -- a missing tool ----------------------------------------------------------------------------


def test_nft_missing_and_apt_failing_is_reported_before_any_change(ctx, machine, monkeypatch):
    bin_dir = only_python_on(monkeypatch, machine)
    (bin_dir / "nft").unlink()
    monkeypatch.setenv("FAKE_FAIL", "apt-get")
    state = fan_state(VXLAN, peers=PEER_1)

    out = ctx.run(ctx.on.install(), state)

    assert out.unit_status.name == "blocked"
    message = out.unit_status.message
    assert message.startswith("could not apply the fan: `apt-get install nftables` failed"), message
    assert batches(machine) == [], "nothing is half-configured: the tools are checked first"
    assert applied_peers(machine) is None

    (bin_dir / "nft").symlink_to(Path(machine_module.__file__).parents[1] / "tests/fakes/fake_tool.py")
    monkeypatch.delenv("FAKE_FAIL")
    out = ctx.run(ctx.on.update_status(), state)

    assert out.unit_status == testing.ActiveStatus("fan 250.3.4.0/24 on fan-250 (vxlan, mtu 1450, 1 peer)")


def test_ip_missing_is_reported(ctx, machine, monkeypatch):
    bin_dir = only_python_on(monkeypatch, machine)
    (bin_dir / "ip").unlink()

    out = ctx.run(ctx.on.install(), fan_state(VXLAN))

    assert out.unit_status == testing.BlockedStatus(
        "could not read this machine's addresses: `ip -j -4 addr show` failed: ip is not installed"
    )
    assert machine.mutating() == []


# -- a full disk -------------------------------------------------------------------------------


def full_disk(monkeypatch: pytest.MonkeyPatch, *paths: str) -> list[str]:
    """Writes of `paths` (all when none is given) fail as on a full disk; returns those tried.

    The e2e failure suite fills a real filesystem; here the charm's one way of writing files
    (Machine.write_text, which writes a temporary file and renames it) is made to fail.
    """
    tried: list[str] = []
    real = machine_module.Machine.write_text

    def write_text(self: machine_module.Machine, path: str, content: str, mode: int = 0o644) -> bool:
        if not paths or path in paths:
            tried.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, path, content, mode)

    monkeypatch.setattr(machine_module.Machine, "write_text", write_text)
    return tried


def test_a_full_disk_on_the_first_hook_is_reported_not_raised(ctx, machine, monkeypatch):
    tried = full_disk(monkeypatch)

    out = ctx.run(ctx.on.install(), fan_state(VXLAN))

    assert tried, "the charm wrote nothing: the test tests nothing"
    assert out.unit_status == testing.BlockedStatus(
        "could not write this machine's files: [Errno 28] No space left on device (retried on every hook)"
    )
    assert machine.mutating() == []

    monkeypatch.setattr(machine_module.Machine, "write_text", _REAL_WRITE_TEXT)
    out = ctx.run(ctx.on.update_status(), fan_state(VXLAN))
    assert out.unit_status.name == "active"


def test_a_full_disk_mid_apply_keeps_the_running_fan_and_converges(ctx, machine, monkeypatch):
    machine.set_fan_kernel(True)
    ctx.run(ctx.on.config_changed(), fan_state(UBUNTU_FAN))
    before = machine.file("/etc/network/fan").read_text()
    tried = full_disk(monkeypatch, "/etc/network/fan")

    out = ctx.run(ctx.on.config_changed(), fan_state(TWO_FANS))

    assert tried == ["/etc/network/fan"]
    assert out.unit_status == testing.BlockedStatus(
        "could not apply the fan: [Errno 28] No space left on device (retried on every hook)"
    )
    assert machine.file("/etc/network/fan").read_text() == before
    assert machine.bridge_up("fan-250"), "the running fan keeps running"
    assert not machine.bridge_up("fan-251")

    monkeypatch.setattr(machine_module.Machine, "write_text", _REAL_WRITE_TEXT)
    out = ctx.run(ctx.on.update_status(), fan_state(TWO_FANS))

    assert out.unit_status.message.startswith("fans 250.3.4.0/24 on fan-250, 251.3.4.0/24 on fan-251")
    assert "251.0.0.0/8 172.16.3.4/16 dhcp bridge fan-251" in machine.file("/etc/network/fan").read_text()
