"""Integration tests against a real Juju controller, with jubilant and pytest-jubilant.

They need a controller and a packed charm, neither of which exists on the CI machine:
without `juju` or a usable controller every test is skipped with the reason. Run them with
`tox -e integration` (CHARM_PATH=./fan-networking_ubuntu@24.04-amd64.charm, or a single
*.charm in the working directory). They are not part of the default test command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _skip_reason() -> str | None:
    juju = shutil.which("juju")
    if juju is None:
        return "juju is not installed: integration tests need a Juju controller"
    try:
        listed = subprocess.run(
            [juju, "controllers", "--format=json"], capture_output=True, text=True, timeout=60, check=False
        )
        usable = listed.returncode == 0 and bool(json.loads(listed.stdout or "{}").get("controllers"))
    except (subprocess.SubprocessError, ValueError):
        usable = False
    return None if usable else "no usable Juju controller (juju controllers lists none)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def charm() -> Path:
    """The packed charm: $CHARM_PATH, or the one *.charm in the working directory."""
    if path := os.environ.get("CHARM_PATH"):
        return Path(path).resolve()
    found = sorted(Path.cwd().glob("*.charm"))
    if len(found) != 1:
        pytest.skip(f"set CHARM_PATH to the packed charm (found {len(found)} *.charm files here)")
    return found[0].resolve()
