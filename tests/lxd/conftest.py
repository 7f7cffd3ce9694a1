"""Fixtures for the LXD tests: the session's daemon (see lxd_harness.py) and the code under test."""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lxd import LxdFan
from tests.lxd.lxd_harness import Daemon, NetnsMachine, skip_reason, teardown


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    netns = f"fanlxd-{secrets.token_hex(3)}"
    lxd_dir = Path(tempfile.mkdtemp(prefix=f"{netns}."))
    lxd_dir.chmod(0o755)  # dnsmasq drops to nobody and must reach its files
    instance = Daemon(netns, lxd_dir)
    try:
        subprocess.run(["ip", "netns", "add", netns], check=True)
        instance.ns("ip", "link", "set", "lo", "up")
        instance.start()
        yield instance
    finally:
        teardown(instance)


@pytest.fixture
def clean_daemon(daemon: Daemon) -> Iterator[Daemon]:
    """The session daemon, emptied after the test (instances, profiles, networks, pools)."""
    yield daemon
    if daemon.process is None:  # a test left it stopped
        daemon.start()
    daemon.clean()


@pytest.fixture
def machine(daemon: Daemon, tmp_path: Path) -> NetnsMachine:
    return NetnsMachine(tmp_path / "root", daemon.netns)


@pytest.fixture
def api_log() -> list[tuple[str, str]]:
    """The (method, path) of every API request `lxd_fan` makes."""
    return []


@pytest.fixture
def lxd_fan(clean_daemon: Daemon, machine: NetnsMachine, api_log: list[tuple[str, str]]) -> LxdFan:
    """The code under test, on the session daemon, its requests logged in `api_log`."""
    fan = LxdFan(machine, clean_daemon.socket)
    assert fan.client is not None
    send = fan.client.request

    def logged(method: str, path: str, body: Any = None) -> tuple[int, str]:
        api_log.append((method, path))
        return send(method, path, body)

    fan.client.request = logged  # type: ignore[method-assign]
    return fan


@pytest.fixture
def profile(clean_daemon: Daemon) -> str:
    """A fresh profile of this test's own, with a config key and a device of its own."""
    name = f"fanlxd-{secrets.token_hex(3)}"
    clean_daemon.client.call(
        "POST",
        "/1.0/profiles",
        {
            "name": name,
            "description": "a test's profile",
            "config": {"user.purpose": "test"},
            "devices": {"data": {"type": "disk", "source": "/srv", "path": "/srv"}},
        },
    )
    return name
