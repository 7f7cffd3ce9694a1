"""The machine a unit configures: its files, its commands and what its kernel reports.

Every file path goes through `Machine.path`, so tests (and the network-namespace e2e
machines, which share one filesystem) point `root` at a directory of their own. Commands
are argument lists resolved on PATH, never a shell; tests put fakes first on PATH only
where the real tool cannot run here (fanctl, systemctl).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import ipaddress
import json
import logging
import os
import select
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATE_DIR = "/var/lib/fan-networking"
FAN_KERNEL_CACHE = "/run/fan-networking/fan-kernel"


class CommandError(Exception):
    """A command failed or could not be started; the message says which and why."""

    def __init__(self, argv: Sequence[str], reason: str):
        self.argv = list(argv)
        self.reason = reason
        super().__init__(f"`{' '.join(argv)}` failed: {reason}")


@dataclasses.dataclass(frozen=True)
class HostAddress:
    """An IPv4 address configured on this host, with the interface that holds it."""

    interface: ipaddress.IPv4Interface  # address and prefix, e.g. 10.0.3.4/16
    ifname: str | None = None
    mtu: int | None = None


class Machine:
    """Files under `root` and commands on PATH, for one machine."""

    def __init__(self, root: Path | str = "/"):
        self.root = Path(root)

    def path(self, path: str) -> Path:
        """`path` (absolute on the real machine) inside this machine's root."""
        return self.root / path.lstrip("/")

    # -- commands ---------------------------------------------------------------------

    def run(
        self, argv: Sequence[str], stdin: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv`; raise CommandError (naming the command and its error) if it fails.

        With check=False a non-zero exit is returned rather than raised.
        """
        logger.debug("running %s", argv)
        try:
            result = subprocess.run(
                list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError:
            raise CommandError(argv, f"{argv[0]} is not installed") from None
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CommandError(argv, str(e)) from None
        return check_result(result, check)

    def run_all(
        self, argvs: Sequence[Sequence[str]], timeout: float = 120, check: bool = True
    ) -> list[subprocess.CompletedProcess[str]]:
        """Run read-only commands at the same time; otherwise what `run` does for each.

        With thousands of peers each kernel table takes `ip` ~12 ms to dump: side by side
        the dumps overlap instead of adding up. Output goes to temporary files, read once
        each command exits: `ip` writes a dump in small pieces, and polling a pipe for each
        cost more than the dump itself. Reads are not logged: in a hook every log line is a
        `juju-log` process, and a no-op hook would spend more on logging its reads than on them.
        """
        with contextlib.ExitStack() as stack:
            started = []
            for argv in argvs:
                out, err = (stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(2))
                try:
                    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
                except FileNotFoundError:
                    raise CommandError(argv, f"{argv[0]} is not installed") from None
                except OSError as e:
                    raise CommandError(argv, str(e)) from None
                stack.callback(_reap, proc)  # after a failure too: nothing is left running
                started.append((argv, proc, out, err))
            results = []
            for argv, proc, out, err in started:
                if not _wait(proc, timeout):
                    raise CommandError(argv, f"timed out after {timeout} seconds")
                out.seek(0)
                err.seek(0)
                result = subprocess.CompletedProcess(list(argv), proc.returncode, out.read(), err.read())
                results.append(check_result(result, check))
            return results

    def succeeds(self, argv: Sequence[str]) -> bool:
        """Whether `argv` runs and exits 0 (for read-only checks)."""
        try:
            self.run(argv)
        except CommandError:
            return False
        return True

    def install_package(self, package: str) -> None:
        """Install a Debian package with charmlibs-apt; CommandError says why it failed."""
        from charmlibs import apt  # imported here: only the install path needs it

        logger.info("installing %s", package)
        try:
            apt.add_package(package)
        except (apt.Error, subprocess.CalledProcessError, OSError) as e:
            raise CommandError(["apt-get", "install", package], str(e).strip()) from None

    def run_json(self, argv: Sequence[str]) -> Any:
        """Run a read-only command that prints JSON (`ip -j ...`); empty output reads as []."""
        return parse_json(self.run_all([argv])[0].stdout)

    # -- facts ------------------------------------------------------------------------

    def addresses(self) -> list[HostAddress]:
        """IPv4 addresses on this host's interfaces (loopback excluded)."""
        found = []
        for link in self.run_json(["ip", "-j", "-4", "addr", "show"]):
            if "LOOPBACK" in link.get("flags", []):
                continue
            for info in link.get("addr_info", []):
                try:
                    iface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
                except (KeyError, ValueError):
                    continue
                found.append(HostAddress(iface, link.get("ifname"), link.get("mtu")))
        return found

    @functools.cached_property
    def fan_kernel(self) -> bool:
        """Whether the kernel carries Ubuntu's FAN patches (decided at runtime, never by release).

        Cached in /run, which a reboot (the only way to change kernels) clears.
        """
        cached = self.read_text(FAN_KERNEL_CACHE).strip()
        if cached in ("yes", "no"):
            return cached == "yes"
        version = self.path("/proc/sys/net/fan/version")
        if not version.exists() and "Ubuntu" in self.read_text("/proc/sys/kernel/version"):
            # fanctl loads ipip to expose the FAN sysctls; only Ubuntu kernels can have them.
            try:
                self.run(["modprobe", "ipip"])
            except CommandError as e:
                logger.info("no FAN support: %s", e)
        try:
            supported = int(version.read_text().strip() or 0) > 0
        except (OSError, ValueError):
            supported = False
        self.write_text(FAN_KERNEL_CACHE, "yes\n" if supported else "no\n")
        return supported

    def sysctl(self, name: str) -> Any:
        """charmlibs-sysctl's `Config(name)`, keeping its files under this machine's root."""
        from charmlibs import sysctl
        from charmlibs.sysctl import _sysctl

        # The library keeps its paths in module globals; a moved root must move them too.
        _sysctl.SYSCTL_DIRECTORY = self.path("/etc/sysctl.d")
        _sysctl.SYSCTL_FILENAME = _sysctl.SYSCTL_DIRECTORY / "95-juju-sysctl.conf"
        _sysctl.SYSCTL_DIRECTORY.mkdir(parents=True, exist_ok=True)
        return sysctl.Config(name)

    # -- files ------------------------------------------------------------------------

    def read_text(self, path: str) -> str:
        """The file's text, or "" when it does not exist."""
        try:
            return self.path(path).read_text()
        except FileNotFoundError:
            return ""

    def write_text(self, path: str, content: str, mode: int = 0o644) -> bool:
        """Write atomically if the content differs; True when the file changed."""
        target = self.path(path)
        if self.read_text(path) == content and target.exists():
            return False
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the target and rename, so a full disk never leaves half a file.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            with os.fdopen(fd, "w") as f:
                f.write(content)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except OSError as e:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise OSError(e.errno, f"could not write {target}: {e.strerror}") from e
        return True

    def write_rendered(self, path: str, template: str, **context: Any) -> bool:
        """Render `template` into `path` if the inputs or the file changed; True when written.

        Rendering (and importing jinja2) is skipped when the template, its context and the
        file are what they were last time, which keeps no-op hooks cheap.
        """
        cache_path = f"{STATE_DIR}/rendered.json"
        try:
            cache = json.loads(self.read_text(cache_path) or "{}")
        except ValueError:
            cache = {}
        key = template_key(template, **context)
        current = self.read_text(path)
        if self.path(path).exists() and cache.get(path) == [key, _sha(current)]:
            return False
        content = render(template, **context)
        changed = self.write_text(path, content)
        cache[path] = [key, _sha(content)]
        self.write_text(cache_path, json.dumps(cache, indent=1, sort_keys=True) + "\n")
        return changed

    def remove(self, path: str) -> bool:
        """Delete the file if it exists; True when it did."""
        try:
            self.path(path).unlink()
        except FileNotFoundError:
            return False
        return True


def template_key(template: str, **context: Any) -> str:
    """A digest of a template's source and its context: equal keys render equal text."""
    source = (TEMPLATES / template).read_bytes()
    return hashlib.sha256(source + repr(sorted(context.items())).encode()).hexdigest()[:16]


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for `proc` to exit; False if it is still running after `timeout` seconds.

    Popen.wait(timeout) polls in growing sleeps that overshoot a short command; a pidfd
    wakes exactly when the process exits.
    """
    pidfd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if ready:
        proc.wait()
    return bool(ready)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def parse_json(output: str) -> Any:
    """What a command printed as JSON (`ip -j ...`); empty output reads as []."""
    output = output.strip()
    return json.loads(output) if output else []


def check_result(
    result: subprocess.CompletedProcess[str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`result`, or CommandError (naming the command and its error) if it failed and `check`."""
    if check and result.returncode != 0:
        raise CommandError(
            result.args, f"exit {result.returncode}: {_summary(result.stderr or result.stdout)}"
        )
    return result


def _summary(output: str, limit: int = 300) -> str:
    """A command's error output on one line, without nft's caret markers."""
    lines = [line.strip() for line in output.splitlines() if line.strip(" \t^~")]
    return "; ".join(lines)[:limit] or "no output"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render(template: str, **context: Any) -> str:
    """Render a jinja2 template from `templates/`; undefined names are errors."""
    return _jinja_env().get_template(template).render(**context)


@functools.cache
def _jinja_env() -> Any:
    import jinja2  # imported here: most hooks render nothing, and jinja2 costs ~40 ms

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - config files and preseeds, not HTML
    )
