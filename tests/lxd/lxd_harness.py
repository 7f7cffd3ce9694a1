"""The real Debian LXD daemon in a network namespace of its own, for the LXD tests.

The daemon runs as `ip netns exec fanlxd-<random> lxd --group root` with LXD_DIR in a
temporary directory, so /var/lib/lxd is never touched and its bridges, nftables rules and
dnsmasq stay inside the namespace. The code under test runs in the test process (the root
namespace): it reaches the API through the unix socket (a file, visible everywhere), and
its `ip` commands go through `NetnsMachine`, which runs them inside the daemon's namespace.
`teardown` (also after failures) deletes what LXD made, stops the daemon and every process
left in the namespace, deletes the namespace and the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lxd import LxdApiError, LxdClient
from machine import Machine


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: the LXD daemon runs in a network namespace of its own"
    if shutil.which("lxd") is None:
        return "lxd is not installed (apt-get install lxd nftables)"
    if shutil.which("nft") is None:
        return "nftables is not installed: Debian's LXD cannot create bridges without it"
    return None


class NetnsMachine(Machine):
    """A Machine whose commands run in network namespace `netns`; records them."""

    def __init__(self, root: Path, netns: str):
        super().__init__(root)
        self.netns = netns
        self.commands: list[list[str]] = []

    def run(
        self, argv: Sequence[str], stdin: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(argv))
        return super().run(["ip", "netns", "exec", self.netns, *argv], stdin, timeout, check)

    def run_all(
        self, argvs: Sequence[Sequence[str]], timeout: float = 120, check: bool = True
    ) -> list[subprocess.CompletedProcess[str]]:
        self.commands.extend(list(argv) for argv in argvs)
        inside = [["ip", "netns", "exec", self.netns, *argv] for argv in argvs]
        return super().run_all(inside, timeout, check)


class Daemon:
    """One LXD daemon in namespace `netns`, with its directory `lxd_dir`."""

    def __init__(self, netns: str, lxd_dir: Path):
        self.netns = netns
        self.lxd_dir = lxd_dir
        self.socket = lxd_dir / "unix.socket"
        self.log = lxd_dir / "lxd.log"
        self.client = LxdClient(self.socket)
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "LXD_DIR": str(lxd_dir), "LXD_CONF": str(lxd_dir / "client")}

    def start(self) -> None:
        with open(self.lxd_dir / "daemon.out", "ab") as out:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "lxd", "--group", "root", f"--logfile={self.log}"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ready = subprocess.run(
            ["lxd", "waitready", "--timeout=60"], env=self.env, capture_output=True, text=True, check=False
        )
        if ready.returncode != 0:
            raise RuntimeError(f"LXD did not start: {ready.stderr}\n{self.log.read_text()[-2000:]}")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Stop the daemon (its dnsmasq children keep running, as on a real host)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    # -- helpers for the tests --------------------------------------------------------

    def get(self, path: str) -> Any:
        """The object at `path`, or None on 404."""
        try:
            return self.client.call("GET", path)
        except LxdApiError as e:
            if e.status == 404:
                return None
            raise

    def raw(self, path: str) -> str:
        status, text = self.client.request("GET", path)
        assert status == 200, text
        return text

    def ns(self, *argv: str) -> str:
        """Run a command inside the daemon's namespace; its stdout."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True, check=True
        ).stdout

    def lxc(self, *argv: str) -> str:
        return subprocess.run(["lxc", *argv], env=self.env, capture_output=True, text=True, check=True).stdout

    def dnsmasq_args(self, network: str) -> list[str]:
        """The command line of the dnsmasq LXD runs for `network`."""
        pid = _dnsmasq_pid(self.lxd_dir / "networks" / network / "dnsmasq.pid")
        assert pid is not None, f"no dnsmasq for {network}"
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")

    def pids(self) -> list[int]:
        """Every process in the daemon's namespace."""
        listed = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False
        )
        return [int(p) for p in listed.stdout.split()]

    def clean(self) -> None:
        """Delete everything LXD holds but the default profile, which gets back its empty state."""
        for instance in self.get("/1.0/instances") or []:
            self.client.call("DELETE", instance)
        for profile in self.get("/1.0/profiles") or []:
            if profile != "/1.0/profiles/default":
                self.client.call("DELETE", profile)
        self.client.call(
            "PUT",
            "/1.0/profiles/default",
            {"config": {}, "description": "Default LXD profile", "devices": {}},
        )
        for network in self.client.call("GET", "/1.0/networks?recursion=1"):
            if network["managed"]:
                self.client.call("DELETE", f"/1.0/networks/{network['name']}")
        for pool in self.get("/1.0/storage-pools") or []:
            self.client.call("DELETE", pool)


def _dnsmasq_pid(pid_file: Path) -> int | None:
    """LXD's dnsmasq.pid is YAML describing the process, with a `pid: N` line."""
    try:
        text = pid_file.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("pid:"):
            return int(line.split(":", 1)[1])
    return None


def teardown(daemon: Daemon) -> None:
    with contextlib.suppress(Exception):
        daemon.clean()  # through the API first: LXD stops each network's dnsmasq itself
    daemon.kill()
    # Whatever still runs in the namespace is ours; a dnsmasq outside it only if it
    # serves our LXD_DIR (a pid file can outlive its process, and pids get reused).
    in_netns = set(daemon.pids())
    from_files = {_dnsmasq_pid(p) for p in daemon.lxd_dir.glob("networks/*/dnsmasq.pid")}
    for pid in in_netns | {p for p in from_files if p is not None}:
        with contextlib.suppress(OSError):
            if pid in in_netns or str(daemon.lxd_dir) in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", daemon.netns], check=False)
    shutil.rmtree(daemon.lxd_dir, ignore_errors=True)
    # liblxc's lock directory for this LXD_DIR (created when an instance exists).
    lock = Path("/run/lxc/lock") / str(daemon.lxd_dir).lstrip("/")
    shutil.rmtree(lock, ignore_errors=True)
    for parent in lock.parents:  # and its parents up to /run/lxc, those left empty
        if parent == Path("/run"):
            break
        with contextlib.suppress(OSError):
            parent.rmdir()


@contextlib.contextmanager
def daemon_on(machine: Any) -> Iterator[Daemon]:
    """LXD running in an e2e lab machine's namespace (a temporary LXD_DIR), found by its hooks.

    Teardown deletes the machine's namespace with the daemon's; the lab tolerates that.
    """
    lxd_dir = Path(tempfile.mkdtemp(prefix="fan-e2e-lxd."))
    lxd_dir.chmod(0o755)  # LXD's dnsmasq drops privileges and must reach its files
    daemon = Daemon(machine.ns, lxd_dir)
    try:
        daemon.start()
        machine.env["LXD_DIR"] = str(lxd_dir)
        yield daemon
    finally:
        teardown(daemon)
