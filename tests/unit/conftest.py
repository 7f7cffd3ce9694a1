"""Fixtures for the charm's unit tests: real ops (ops.testing), fake system tools.

The charm runs for real through `ops.testing`; only the system tools that cannot run here
(fanctl: Ubuntu's FAN kernel; systemctl: no systemd) or must not touch the root network
namespace (ip, bridge, nft, sysctl, modprobe, ping) are replaced on PATH by
tests/fakes/fake_tool.py, which records every call. Files go to a temporary root.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from charmlibs.sysctl import _sysctl
from ops import testing

import charm
import fanhost

FAKE_TOOL = Path(__file__).resolve().parents[1] / "fakes" / "fake_tool.py"
FAKED = ("fanctl", "systemctl", "ip", "bridge", "nft", "sysctl", "modprobe", "ping", "apt-get")
READ_ONLY = (
    ("ip", "-j"),
    ("bridge", "-j"),
    ("nft", "list"),
    ("systemctl", "is-enabled"),
    ("ping",),
)


@dataclasses.dataclass
class FakeMachine:
    """The machine the charm under test configures: a file root and recorded commands."""

    root: Path
    log: Path

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line)["argv"] for line in self.log.read_text().splitlines()]

    def mutating(self) -> list[list[str]]:
        """Calls that can change the machine (everything but known reads)."""
        return [c for c in self.calls() if not any(tuple(c[: len(r)]) == r for r in READ_ONLY)]

    def forget_calls(self) -> None:
        self.log.unlink(missing_ok=True)

    def file(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def set_addresses(self, *links: tuple[str, int, list[str]]) -> None:
        """Host interfaces as `ip -j -4 addr show` reports them: (ifname, mtu, ["a.b.c.d/p"])."""
        data = [
            {
                "ifname": name,
                "mtu": mtu,
                "flags": ["UP"],
                "addr_info": [
                    {"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}
                    for a in addrs
                ],
            }
            for name, mtu, addrs in links
        ]
        self.file("/fake/ip-addr.json").parent.mkdir(parents=True, exist_ok=True)
        self.file("/fake/ip-addr.json").write_text(json.dumps(data))

    def set_fan_kernel(self, supported: bool = True) -> None:
        version = self.file("/proc/sys/net/fan/version")
        version.parent.mkdir(parents=True, exist_ok=True)
        version.write_text("3\n" if supported else "0\n")

    def bridge_up(self, name: str) -> bool:
        return self.file(f"/sys/class/net/{name}").exists()

    def add_agent(self, unit: str) -> None:
        """Make a unit look deployed on this machine (Juju keeps an agent dir per unit)."""
        self.file(f"/var/lib/juju/agents/unit-{unit.replace('/', '-')}").mkdir(parents=True, exist_ok=True)


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMachine]:
    root = tmp_path / "root"
    bin_dir = tmp_path / "bin"
    root.mkdir()
    bin_dir.mkdir()
    for tool in FAKED:
        (bin_dir / tool).symlink_to(FAKE_TOOL)
    fake = FakeMachine(root, tmp_path / "calls.jsonl")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ROOT", str(root))
    monkeypatch.setenv("FAKE_LOG", str(fake.log))
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    monkeypatch.setattr(charm, "MACHINE_ROOT", root)
    # Machine.sysctl() moves charmlibs-sysctl's paths under the root; restore them afterwards.
    monkeypatch.setattr(_sysctl, "SYSCTL_DIRECTORY", _sysctl.SYSCTL_DIRECTORY)
    monkeypatch.setattr(_sysctl, "SYSCTL_FILENAME", _sysctl.SYSCTL_FILENAME)
    fake.set_addresses(("lo", 65536, []))
    yield fake


@pytest.fixture
def ctx() -> testing.Context[charm.FanNetworkingCharm]:
    return testing.Context(charm.FanNetworkingCharm, app_name="fan-networking", unit_id=0, machine_id="3")


def fan_state(
    config: Mapping[str, str | int | bool] | None = None,
    address: str = "172.16.3.4",
    cidr: str = "172.16.0.0/16",
    leader: bool = True,
    peers: dict[int, dict[str, str]] | None = None,
    app_data: dict[str, str] | None = None,
    extra_relations: tuple[testing.RelationBase, ...] = (),
) -> testing.State:
    """A unit of fan-networking on a machine whose juju-info binding has `address`."""
    return testing.State(
        config=dict(config or {}),
        leader=leader,
        relations={
            testing.SubordinateRelation("juju-info", remote_app_name="ubuntu"),
            testing.PeerRelation("fan-peers", peers_data=peers or {}, local_app_data=app_data or {}),
            *extra_relations,
        },
        networks={
            testing.Network(
                "juju-info",
                bind_addresses=[
                    testing.BindAddress([testing.Address(address, cidr=cidr)], interface_name="eth0")
                ],
            )
        },
    )


def peer_data(address: str, machine: str, fan_kernel: bool = False) -> dict[str, str]:
    """A peer unit's databag as the charm publishes it."""
    return {
        "underlay-addresses": json.dumps([address]),
        "machine": json.dumps(machine),
        "fan-kernel": json.dumps(fan_kernel),
    }


class RecordingPlane:
    """Stands in for the vxlan plane in charm-level tests (the real one is tested on a real
    kernel in tests/e2e); records what the charm asks of it."""

    def __init__(self, name: str, journal: list[tuple[str, str, object]]):
        self.name = name
        self.journal = journal

    def prepare(self) -> None:
        self.journal.append(("prepare", self.name, None))

    def apply(self, fans: list[object], since: list[object] | None = None) -> list[str]:
        self.journal.append(("apply", self.name, fans))
        return [f"applied {len(fans)} fans"]

    def teardown(self) -> list[str]:
        self.journal.append(("teardown", self.name, None))
        return ["torn down"]

    def kernel_state(self) -> dict[str, object]:
        return {"plane": self.name}


@pytest.fixture
def vxlan_journal(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, object]]:
    """Replace the vxlan plane with a RecordingPlane; the ubuntu-fan plane stays real."""
    journal: list[tuple[str, str, object]] = []
    real = fanhost.make_dataplane

    def make(name: str, machine: object) -> object:
        return RecordingPlane(name, journal) if name == "vxlan" else real(name, machine)  # type: ignore[arg-type]

    monkeypatch.setattr(fanhost, "make_dataplane", make)
    return journal
