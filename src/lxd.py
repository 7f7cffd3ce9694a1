"""LXD on the fan: containers of one LXD profile get their `eth0` on this machine's first fan.

- `vxlan`: per fan, a managed LXD bridge named like the fan bridge (`fan-250`) holding the
  gateway with the segment prefix, DHCP after the host-reserved addresses, the fan MTU
  (LXD 5.0.2 hands it to containers itself, as DHCP option 26) and no NAT (the charm
  masquerades). The profile's eth0 is a NIC on that network.
- `ubuntu-fan`: no LXD network; the profile's eth0 is bridged to fanctl's bridge.

The wanted state is rendered from `templates/lxd-preseed.yaml.j2` in LXD's preseed format
and compared with what LXD's REST API returns; only differences are written, through the
API over the unix socket. Not `lxd init --preseed`: it costs a process on every hook even
when nothing changed, and it merges, so it can neither drop a key nor put a profile back.

What the charm made is recorded under STATE_DIR: the networks it created (`lxd.json`,
written before the network exists, so a crash never leaves one the charm would then refuse
as foreign) and each profile exactly as LXD returned it before the charm first changed it
(`lxd-profile-<name>.json`), whose eth0 `remove` puts back.

The few `ip` commands go through `Machine.run`, so they act in whichever network
namespace the machine's commands run in (the LXD tests run them with `ip netns exec`).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dataplane import ApplyError
from machine import STATE_DIR, CommandError, Machine, render, template_key
from plan import LocalFan, PlanError

logger = logging.getLogger(__name__)

TEMPLATE = "lxd-preseed.yaml.j2"
RECORD_FILE = f"{STATE_DIR}/lxd.json"
PROFILE_FILE = f"{STATE_DIR}/lxd-profile-{{}}.json"
SOCKETS = ("/var/snap/lxd/common/lxd/unix.socket", "/var/lib/lxd/unix.socket")
DATAPLANES = ("vxlan", "ubuntu-fan")


class LxdApiError(ApplyError):
    """LXD refused a request; the message is LXD's own."""

    def __init__(self, method: str, path: str, status: int, message: str):
        self.status = status
        super().__init__(f"LXD {method} {path}: {message}")


class LxdClient:
    """LXD's REST API over its unix socket; one connection per request, so restarts do no harm."""

    def __init__(self, socket_path: Path, timeout: float = 60):
        self.socket_path = socket_path
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, str]:
        """Send one request; returns the HTTP status and the raw response text."""
        conn = _UnixConnection(str(self.socket_path), self.timeout)
        try:
            payload = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, payload, headers)
            response = conn.getresponse()
            return response.status, response.read().decode()
        except (OSError, http.client.HTTPException) as e:
            raise ApplyError(f"LXD is not answering on {self.socket_path}: {e}") from None
        finally:
            conn.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The response's metadata; LxdApiError with LXD's message when it fails."""
        return self.call_raw(method, path, body)[1]

    def call_raw(self, method: str, path: str, body: Any = None) -> tuple[str, Any]:
        """The raw response text and its metadata (waiting for background operations)."""
        status, text = self.request(method, path, body)
        try:
            reply = json.loads(text)
        except ValueError:
            raise LxdApiError(method, path, status, f"not JSON: {text[:200]!r}") from None
        if reply.get("type") == "error" or status >= 400:
            raise LxdApiError(method, path, reply.get("error_code") or status, reply.get("error") or text)
        if reply.get("type") == "async":
            op = self.call("GET", f"{reply['operation']}/wait?timeout={int(self.timeout)}")
            if op.get("status_code") != 200:
                raise LxdApiError(method, path, op.get("status_code", 0), op.get("err") or op.get("status"))
        return text, reply.get("metadata")


class LxdFan:
    """Puts one LXD profile's containers on the fan; see the module docstring."""

    def __init__(self, machine: Machine, socket_path: Path | None = None):
        self.machine = machine
        self.socket_path = socket_path or self._find_socket()
        self.client = LxdClient(self.socket_path) if self.socket_path else None

    @property
    def available(self) -> bool:
        """Whether LXD's socket exists and its API answers (and trusts us)."""
        if self.client is None or not self.client.socket_path.exists():
            return False
        try:
            return self.client.call("GET", "/1.0").get("auth") == "trusted"
        except ApplyError as e:
            logger.info("LXD is not available: %s", e)
            return False

    def apply(self, fans: Sequence[LocalFan], dataplane: str, profile: str) -> list[str]:
        """Make LXD carry `fans` and `profile`'s eth0 on the first; returns the changes made.

        No fans means no LXD side at all: the same as `remove`. PlanError when something
        the charm must not touch is in the way, ApplyError when LXD refuses.
        """
        if dataplane not in DATAPLANES:
            raise ValueError(f"unknown data plane {dataplane!r}")
        if not fans:
            return self.remove()
        record = self._record()
        record["profile"] = profile  # saved with the rendered state, which depends on it
        wanted = self._wanted(fans, dataplane, profile, record)
        changes = []
        for name, saved in self._saved_profiles().items():
            if name != profile:  # lxd-profile changed: the old profile gets its eth0 back
                changes += self._restore_profile(name, saved)
        for network in wanted["networks"]:
            changes += self._ensure_network(network, record)
        keep = {network["name"] for network in wanted["networks"]}
        stale = [name for name in record["networks"] if name not in keep]
        [wanted_profile] = wanted["profiles"]
        eth0 = wanted_profile["devices"]["eth0"]
        if eth0.get("parent") in stale:
            # vxlan -> ubuntu-fan: LXD counts a NIC bridged to its own bridge as a user of
            # that network, so the profile lets go first and gets its new eth0 afterwards.
            changes += self._set_eth0(profile, None)
            changes += self._delete_networks(stale, record)
            stale = []
        changes += self._set_eth0(profile, eth0)
        # Only after the profile left them: LXD refuses to delete a network in use.
        return changes + self._delete_networks(stale, record)

    @property
    def recorded(self) -> bool:
        """Whether the charm has changed anything in LXD that `remove` would undo."""
        return bool(self._record()["networks"] or self._saved_profiles())

    def remove(self) -> list[str]:
        """Give every changed profile its eth0 back, delete the networks the charm created.

        ApplyError names the instances still using a network; the profiles are restored
        by then, and the network stays recorded so a later `remove` finishes the job.
        """
        if self.client is None:  # LXD is gone, and everything the charm made there with it
            self.machine.remove(RECORD_FILE)
            for path in self._saved_profile_paths():
                path.unlink(missing_ok=True)
            return []
        changes = []
        for name, saved in self._saved_profiles().items():
            changes += self._restore_profile(name, saved)
        record = self._record()
        changes += self._delete_networks(list(record["networks"]), record)
        self.machine.remove(RECORD_FILE)
        return changes

    def state(self) -> dict[str, Any]:
        """What LXD holds of the charm's work, for the `show` action."""
        if not self.available:
            return {"available": False}
        record = self._record()
        networks = {}
        for name in record["networks"]:
            network = self._get(f"/1.0/networks/{_quote(name)}")
            networks[name] = (
                None
                if network is None
                else {k: network.get(k) for k in ("config", "description", "status", "used_by")}
            )
        name = record.get("profile")
        profile = self._get(f"/1.0/profiles/{_quote(name)}") if name else None
        return {
            "available": True,
            "socket": str(self.socket_path),
            "networks": networks,
            "profile": name,
            "eth0": profile["devices"].get("eth0") if profile else None,
        }

    # -- networks -----------------------------------------------------------------------

    def _ensure_network(self, network: dict[str, Any], record: dict[str, Any]) -> list[str]:
        name = network["name"]
        current = self._get(f"/1.0/networks/{_quote(name)}")
        if current is not None and not current.get("managed"):
            # LXD answers for any interface; an unmanaged one blocks creating the network
            # ("Network interface ... already exists").
            self._delete_charm_interface(name)
            current = None
        elif current is not None and name not in record["networks"]:
            raise PlanError(
                f"LXD network {name} exists and fan-networking did not create it: delete it "
                f"(`lxc network delete {name}`, after moving its instances) so the charm can "
                f"create its own, or set lxd=false"
            )
        if current is None:
            record["networks"].append(name)
            self._save_record(record)
            try:
                self._call("POST", "/1.0/networks", network)
            except ApplyError:
                record["networks"].remove(name)
                self._save_record(record)
                raise
            return [f"created LXD network {name}"]
        body = {"config": network["config"], "description": network["description"]}
        if {k: current.get(k) for k in body} == body:
            return []
        self._call("PUT", f"/1.0/networks/{_quote(name)}", body)
        old = current.get("config") or {}
        keys = sorted(k for k in old.keys() | body["config"].keys() if old.get(k) != body["config"].get(k))
        if current.get("description") != body["description"]:
            keys.append("description")
        return [f"updated LXD network {name}: {', '.join(keys)}"]

    def _delete_charm_interface(self, name: str) -> None:
        """Delete a plain bridge the VXLAN plane made, so LXD can create its own in its place."""
        from vxlan import LINK_ALIAS  # imported here: only this rare path needs the VXLAN plane

        try:
            links = self.machine.run_json(["ip", "-j", "link", "show", "dev", name])
        except CommandError as e:
            raise ApplyError(str(e)) from None
        if not links or links[0].get("ifalias") != LINK_ALIAS:
            raise PlanError(
                f"interface {name} exists and neither LXD nor fan-networking made it: delete it "
                f"(`ip link del {name}`) so the charm can create LXD network {name}, or set lxd=false"
            )
        logger.info("replacing the plain bridge %s with an LXD network", name)
        try:
            self.machine.run(["ip", "link", "del", "dev", name])
        except CommandError as e:
            raise ApplyError(str(e)) from None

    def _delete_networks(self, names: Sequence[str], record: dict[str, Any]) -> list[str]:
        changes, busy = [], []
        for name in names:
            try:
                self._call("DELETE", f"/1.0/networks/{_quote(name)}")
                changes.append(f"deleted LXD network {name}")
            except LxdApiError as e:
                if e.status != 404:
                    network = self._get(f"/1.0/networks/{_quote(name)}") or {}
                    users = [_user(u) for u in network.get("used_by") or []]
                    busy.append(f"{name} ({', '.join(users) or e})")
                    continue
            record["networks"].remove(name)
        if names:
            self._save_record(record)
        if busy:
            raise ApplyError(
                f"LXD network still in use, not deleted: {'; '.join(busy)}; "
                f"move or delete those instances, then remove again"
            )
        return changes

    # -- profiles -----------------------------------------------------------------------

    def _set_eth0(self, name: str, eth0: dict[str, Any] | None) -> list[str]:
        """Give profile `name` this eth0 (None: none), keeping the profile as it was first."""
        try:
            raw, current = self._client().call_raw("GET", f"/1.0/profiles/{_quote(name)}")
        except LxdApiError as e:
            if e.status == 404:
                raise PlanError(f"LXD profile {name} does not exist: create it or set lxd-profile") from None
            raise
        if current["devices"].get("eth0") == eth0:
            return []
        path = PROFILE_FILE.format(name)
        if not self.machine.path(path).exists():  # the first change: keep what it was, verbatim
            self.machine.write_text(path, raw)
        devices = {k: v for k, v in current["devices"].items() if k != "eth0"}
        if eth0 is None:
            self._put_profile(current, devices)
            return [f"removed eth0 from LXD profile {name}"]
        self._put_profile(current, {**devices, "eth0": eth0})
        return [f"set eth0 of LXD profile {name}: {_describe(eth0)}"]

    def _restore_profile(self, name: str, saved: dict[str, Any]) -> list[str]:
        """Put back the eth0 the profile had before the charm; the rest is the operator's."""
        current = self._get(f"/1.0/profiles/{_quote(name)}")
        changes = []
        if current is not None:
            devices = {k: v for k, v in current["devices"].items() if k != "eth0"}
            if "eth0" in saved["devices"]:
                devices["eth0"] = saved["devices"]["eth0"]
            if devices != current["devices"]:
                self._put_profile(current, devices)
                changes.append(f"restored eth0 of LXD profile {name}")
        self.machine.remove(PROFILE_FILE.format(name))
        return changes

    def _put_profile(self, current: dict[str, Any], devices: dict[str, Any]) -> None:
        body = {"config": current["config"], "description": current["description"], "devices": devices}
        self._call("PUT", f"/1.0/profiles/{_quote(current['name'])}", body)

    def _saved_profiles(self) -> dict[str, dict[str, Any]]:
        """Each profile the charm changed, as LXD returned it before the first change."""
        saved = {}
        for path in self._saved_profile_paths():
            try:
                profile = json.loads(path.read_text())["metadata"]
                saved[profile["name"]] = profile
            except (OSError, ValueError, KeyError, TypeError):
                logger.warning("ignoring unreadable %s", path)
        return saved

    def _saved_profile_paths(self) -> list[Path]:
        return sorted(self.machine.path(STATE_DIR).glob("lxd-profile-*.json"))

    # -- wanted state and records -------------------------------------------------------

    def _wanted(
        self, fans: Sequence[LocalFan], dataplane: str, profile: str, record: dict[str, Any]
    ) -> dict[str, Any]:
        """The rendered preseed, parsed; kept in `record` and reused while the inputs hold."""
        context: dict[str, Any] = {
            "networks": (
                [
                    {
                        "name": f.bridge,
                        "description": f"fan-networking: fan {f.mapping}, segment {f.segment}",
                        "address": f"{f.gateway}/{f.segment.prefixlen}",
                        "dhcp": "true" if f.dhcp else "false",
                        "range": f"{f.dhcp_range[0]}-{f.dhcp_range[1]}",
                        "mtu": f.mtu,
                    }
                    for f in fans
                ]
                if dataplane == "vxlan"
                else []
            ),
            "profile": profile,
            "dataplane": dataplane,
            "bridge": fans[0].bridge,
            "mtu": fans[0].mtu,
        }
        key = template_key(TEMPLATE, **context)
        if record.get("wanted-key") != key:
            import yaml  # imported here, like jinja2: an unchanged hook renders nothing

            record["wanted"] = yaml.safe_load(render(TEMPLATE, **context))
            record["wanted-key"] = key
            self._save_record(record)
        return record["wanted"]

    def _record(self) -> dict[str, Any]:
        try:
            record = json.loads(self.machine.read_text(RECORD_FILE) or "{}")
        except ValueError:
            logger.warning("ignoring unreadable %s", RECORD_FILE)
            record = {}
        record.setdefault("networks", [])
        return record

    def _save_record(self, record: dict[str, Any]) -> None:
        self.machine.write_text(RECORD_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")

    # -- API ----------------------------------------------------------------------------

    def _client(self) -> LxdClient:
        if self.client is None:
            raise ApplyError("LXD is not installed here: no unix socket found")
        return self.client

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self._client().call(method, path, body)

    def _get(self, path: str) -> Any:
        """The object at `path`, or None when LXD has none."""
        try:
            return self._call("GET", path)
        except LxdApiError as e:
            if e.status == 404:
                return None
            raise

    def _find_socket(self) -> Path | None:
        candidates = [self.machine.path(p) for p in SOCKETS]
        if os.environ.get("LXD_DIR"):
            candidates.insert(0, Path(os.environ["LXD_DIR"]) / "unix.socket")
        return next((p for p in candidates if p.exists()), None)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("lxd", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _user(url: str) -> str:
    """`/1.0/instances/c1?project=x` -> `instance c1`."""
    parts = urllib.parse.urlsplit(url).path.split("/")
    kind = parts[2].rstrip("s") if len(parts) > 3 else "user"
    return f"{kind} {urllib.parse.unquote(parts[-1])}"


def _describe(device: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(device.items()))
