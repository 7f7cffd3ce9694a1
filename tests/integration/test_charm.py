"""Deploy with `ubuntu`, integrate, configure, check status, run both actions, remove."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import jubilant
import pytest

APP = "fan-networking"
PRINCIPAL = "ubuntu"
OVERLAY = "250.0.0.0/8"


def underlay_of(juju: jubilant.Juju, unit: str) -> ipaddress.IPv4Interface:
    """The unit's primary IPv4 address with its prefix, as the machine reports it."""
    out = juju.exec("ip", "-4", "-j", "addr", "show", "scope", "global", unit=unit).stdout
    for link in json.loads(out):
        for info in link.get("addr_info", []):
            if not link["ifname"].startswith(("fan-", "vx-", "lxd")):
                return ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
    raise AssertionError(f"no IPv4 address on {unit}: {out}")


@pytest.mark.juju_setup
def test_deploy_integrate_configure(charm: Path, juju: jubilant.Juju):
    juju.deploy(PRINCIPAL, base="ubuntu@24.04", num_units=2)
    juju.deploy(charm, app=APP)
    juju.integrate(f"{APP}:juju-info", f"{PRINCIPAL}:juju-info")
    juju.wait(lambda s: jubilant.all_blocked(s, APP), error=jubilant.any_error, timeout=1200)
    messages = [u.workload_status.message for u in _subordinates(juju.status())]
    assert messages and all("fan-config is empty" in m for m in messages), messages

    underlay = underlay_of(juju, f"{PRINCIPAL}/0").network
    juju.config(APP, {"fan-config": f"{underlay}={OVERLAY}"})
    juju.wait(lambda s: jubilant.all_active(s, PRINCIPAL, APP), error=jubilant.any_error, timeout=900)
    for sub in _subordinates(juju.status()):
        assert sub.workload_status.message.startswith("fan 250."), sub.workload_status.message
        assert "(vxlan" in sub.workload_status.message or "(ubuntu-fan" in sub.workload_status.message


def test_bad_config_blocks_and_the_fan_keeps_running(juju: jubilant.Juju):
    good = juju.config(APP)["fan-config"]
    juju.config(APP, {"fan-config": f"{good} foobar"})
    juju.wait(lambda s: jubilant.all_blocked(s, APP), timeout=300)
    assert all("foobar" in u.workload_status.message for u in _subordinates(juju.status()))
    assert "fan-250" in juju.exec("ip", "-br", "link", unit=f"{PRINCIPAL}/0").stdout
    juju.config(APP, {"fan-config": good})
    juju.wait(lambda s: jubilant.all_active(s, APP), timeout=300)


def test_show_and_check_connectivity(juju: jubilant.Juju):
    unit = _subordinate_names(juju.status())[0]
    shown = juju.run(unit, "show").results
    assert json.loads(shown["fans"])[0]["bridge"] == "fan-250"
    checked = juju.run(unit, "check-connectivity").results
    rows = json.loads(checked["peers"])
    assert len(rows) == 1 and rows[0]["reachable"], checked["table"]


def test_remove_leaves_no_fan_behind(juju: jubilant.Juju):
    juju.remove_application(APP)
    juju.wait(lambda s: APP not in s.apps, timeout=600)
    for unit in (f"{PRINCIPAL}/0", f"{PRINCIPAL}/1"):
        links = juju.exec("ip", "-br", "link", unit=unit).stdout
        assert "fan-250" not in links and "vx-250" not in links, links


def _subordinates(status: jubilant.Status) -> list[jubilant.statustypes.UnitStatus]:
    return [
        sub
        for principal in status.apps[PRINCIPAL].units.values()
        for name, sub in (principal.subordinates or {}).items()
        if name.startswith(f"{APP}/")
    ]


def _subordinate_names(status: jubilant.Status) -> list[str]:
    return sorted(
        name
        for principal in status.apps[PRINCIPAL].units.values()
        for name in (principal.subordinates or {})
        if name.startswith(f"{APP}/")
    )
