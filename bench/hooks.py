"""Hook overhead: a no-op `config-changed` and `update-status` of the real charm against a bare one.

Both run through the real entry point, as Juju's `dispatch` does: a fresh Python process
running `ops.main` with JUJU_DISPATCH_PATH, JUJU_UNIT_NAME, JUJU_CHARM_DIR (a charm
directory assembled here: metadata.yaml, config.yaml and actions.yaml split from
charmcraft.yaml as `charmcraft pack` does, with src/, lib/ and templates/ linked in) and
Juju's hook tools on PATH. The hook tools are shell fakes (bench/juju_tool.sh), so they
cost about what real ones do; `systemctl` is the test suite's fake (no systemd here).
The charm runs in a network namespace of its own with its fan already applied, so the
no-op path is the real one: it reads the kernel and finds nothing to change.
See bench/hooks_entry.py for the one difference from src/charm.py's own `__main__`.

The two charms alternate, run by run, so both see the same machine load. A separate set
of runs puts a logging shim in front of ip/bridge/nft/sysctl to count the commands a
no-op hook runs, and which of them would change anything.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench import common
from bench.common import REPO, median, p90, table, worker

UNIT = "fan-networking/0"
PEER = "fan-networking/1"
ADDRESS = "10.123.1.10"
MAPPING = "10.123.0.0/16=250.0.0.0/8"
HOOKS = ("config-changed", "update-status")
CHARMS = ("fan", "bare")
SHIMMED = ("ip", "bridge", "nft", "sysctl")
TOOLS = (
    "config-get", "relation-ids", "relation-list", "relation-get", "relation-set", "network-get",
    "is-leader", "status-get", "status-set", "juju-log", "application-version-set", "state-get",
    "state-set", "action-get", "action-set", "action-fail", "action-log", "goal-state",
    "opened-ports", "open-port", "close-port", "storage-list", "secret-get",
)  # fmt: skip


def run(quick: bool) -> None:
    from tests.e2e.lab import Lab

    request: dict[str, Any] = {"reps": 15 if quick else 40, "counting_reps": 3}
    with Lab(prefix=f"fanbh{secrets.token_hex(2)}-") as lab:
        machine = lab.add_machine("h1", ADDRESS)
        request["workdir"] = str(lab.workdir / "hooks")
        result = worker(machine.ns, "bench.hooks", request, timeout=900)
    report(result)


def report(result: dict[str, Any]) -> None:
    rows = []
    for hook in HOOKS:
        fan, bare = result["times"][hook]["fan"], result["times"][hook]["bare"]
        for charm, times in (("fan-networking", fan), ("bare ops charm", bare)):
            counts = result["counts"][hook]["fan" if charm.startswith("fan") else "bare"]
            rows.append([
                hook, charm, len(times), median(times), p90(times), median(times) / median(bare),
                p90(times) / p90(bare), counts["hook_tools"], counts["commands"], counts["mutating"],
            ])  # fmt: skip
    table(
        f"hooks: wall time of one hook process through ops.main (seconds; {result['reps']} runs "
        "each, the two charms alternating)",
        ["hook", "charm", "runs", "median", "p90", "x bare (median)", "x bare (p90)", "hook tools",
         "commands", "mutating"],
        rows,
        notes=[
            "hook tools / commands / mutating = per hook, median of "
            f"{result['counting_reps']} separate runs with a logging shim on ip, bridge, nft, sysctl "
            "(mutating: -batch, add/del/set, nft -f/delete, sysctl -p/-w, any systemctl change)",
            f"fan-networking no-op config-changed runs: {result['sample']['config-changed']}",
            f"hook tools it calls: {result['sample']['tools']}",
            f"status after the hook: {result['status']}",
            "targets: no-op hook <= 1.3x the bare charm; 0 mutating commands",
        ],
    )  # fmt: skip
    if result.get("imports"):
        table(
            "hooks: where a fan-networking hook's time goes (python -X importtime, one run; "
            "cumulative microseconds of the biggest top-level imports)",
            ["module", "us"],
            result["imports"],
        )


# -- the worker, inside the namespace ----------------------------------------------------


def _charm_dir(path: Path) -> Path:
    """A charm directory as `charmcraft pack` lays it out, with the sources linked in."""
    path.mkdir(parents=True)
    project = yaml.safe_load((REPO / "charmcraft.yaml").read_text())
    meta_keys = ("name", "title", "summary", "description", "subordinate", "assumes", "requires",
                 "provides", "peers")  # fmt: skip
    (path / "metadata.yaml").write_text(yaml.safe_dump({k: project[k] for k in meta_keys if k in project}))
    (path / "config.yaml").write_text(yaml.safe_dump(project.get("config", {})))
    (path / "actions.yaml").write_text(yaml.safe_dump(project.get("actions", {})))
    for name in ("src", "lib", "templates"):
        (path / name).symlink_to(REPO / name)
    # Copied in, not run from bench/: a script's directory leads sys.path, and bench/ has
    # modules named like the charm's (dataplane).
    shutil.copy(REPO / "bench/hooks_entry.py", path / "dispatch.py")
    return path


def _fake_juju(path: Path) -> None:
    """Canned answers: the config, the binding, a leader with one peer and its principal."""
    path.mkdir(parents=True)
    options = yaml.safe_load((REPO / "charmcraft.yaml").read_text())["config"]["options"]
    config = {name: option.get("default") for name, option in options.items()}
    config["fan-config"] = MAPPING
    files = {
        "config.json": config,
        "network.json": {
            "bind-addresses": [
                {
                    "mac-address": "",
                    "interface-name": "eth0",
                    "addresses": [{"hostname": "", "value": ADDRESS, "cidr": "10.123.0.0/16"}],
                }
            ],
            "egress-subnets": [f"{ADDRESS}/32"],
            "ingress-addresses": [ADDRESS],
        },
        "ids-fan-peers.json": ["fan-peers:1"],
        "ids-juju-info.json": ["juju-info:2"],
        "list-1.json": [PEER],
        "list-2.json": ["ubuntu/0"],
        f"rel-1-{PEER.replace('/', '-')}.json": {
            "underlay-addresses": json.dumps(["10.123.2.20"]),
            "machine": json.dumps("2"),
            "fan-kernel": "false",
        },
    }
    for name, content in files.items():
        (path / name).write_text(json.dumps(content))
    shutil.copy(REPO / "bench/juju_relation_set.py", path / "relation_set.py")


def _fakebin(path: Path, shim: Path) -> None:
    path.mkdir(parents=True)
    shim.mkdir(parents=True)
    for tool in TOOLS:
        (path / tool).symlink_to(REPO / "bench/juju_tool.sh")
    (path / "systemctl").symlink_to(REPO / "tests/fakes/fake_tool.py")
    for tool in SHIMMED:
        (shim / tool).symlink_to(REPO / "bench/cmd_shim.sh")


class Hooks:
    def __init__(self, workdir: Path):
        self.work = workdir
        self.fake = workdir / "juju"
        self.root = workdir / "machine"  # the fan charm's files
        self.root.mkdir(parents=True)
        (self.root / "var/lib/juju/agents/unit-fan-networking-0").mkdir(parents=True)
        _fake_juju(self.fake)
        _fakebin(workdir / "bin", workdir / "shim")
        self.dirs = {charm: _charm_dir(workdir / f"charm-{charm}") for charm in CHARMS}
        path = os.environ["PATH"]
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
        self.env.update(
            PATH=f"{workdir / 'bin'}{os.pathsep}{path}",
            REAL_PATH=f"{workdir / 'bin'}{os.pathsep}{path}",
            PYTHONPATH="lib:src",  # relative to the charm directory, as dispatch sets it (lib:venv)
            PYTHONPYCACHEPREFIX=str(workdir / "pycache"),  # compiled once, as in a real charm
            JUJU_UNIT_NAME=UNIT,
            JUJU_MODEL_NAME="bench",
            JUJU_MODEL_UUID="00000000-0000-4000-8000-000000000000",
            JUJU_VERSION="3.6.14",
            JUJU_MACHINE_ID="1",
            FAKE_JUJU=str(self.fake),
            FAKE_JUJU_PYTHON=sys.executable,
            FAKE_ROOT=str(self.root),
            FAKE_LOG=str(self.fake / "systemctl.jsonl"),
            BENCH_MACHINE_ROOT=str(self.root),
        )

    def run(self, charm: str, hook: str, shim: bool = False, python_args: tuple[str, ...] = ()) -> float:
        env = {
            **self.env,
            "JUJU_CHARM_DIR": str(self.dirs[charm]),
            "JUJU_DISPATCH_PATH": f"hooks/{hook}",
            "JUJU_HOOK_NAME": hook,
            "BENCH_CHARM": charm,
        }
        if shim:
            env["PATH"] = f"{self.work / 'shim'}{os.pathsep}{env['PATH']}"
        argv = [sys.executable, *python_args, "dispatch.py"]
        start = time.perf_counter()
        proc = subprocess.run(
            argv, env=env, cwd=self.dirs[charm], capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{charm} {hook} failed:\n{proc.stderr[-3000:]}")
        self.last_stderr = proc.stderr
        return seconds

    def logged(self, name: str) -> list[str]:
        path = self.fake / name
        lines = path.read_text().splitlines() if path.exists() else []
        path.unlink(missing_ok=True)
        return lines


def _mutating(line: str) -> bool:
    tool, *args = line.split()
    if tool in ("ip", "bridge"):
        return "-batch" in args or not {"show", "list", "get", "-j"} & set(args)
    if tool == "nft":
        return args[:1] != ["list"]
    if tool == "sysctl":
        return any(a in ("-p", "-w", "--system") or a.startswith("-p") or "=" in a for a in args)
    return True


def work(request: dict[str, Any]) -> dict[str, Any]:
    hooks = Hooks(Path(request["workdir"]))
    # Apply the fan for real (install's and config-changed's work), then let it settle.
    hooks.run("fan", "config-changed", shim=True)
    setup_commands = hooks.logged("commands.log")
    hooks.logged("calls.log")
    for hook in HOOKS:
        hooks.run("fan", hook)
        hooks.run("bare", hook)
    hooks.logged("calls.log")
    hooks.logged("systemctl.jsonl")
    counts: dict[str, dict[str, dict[str, float]]] = {h: {} for h in HOOKS}
    sample: dict[str, Any] = {}
    status = ""
    for hook in HOOKS:
        for charm in CHARMS:
            per_run = []
            for _ in range(request["counting_reps"]):
                hooks.run(charm, hook, shim=True)
                calls = hooks.logged("calls.log")
                commands = hooks.logged("commands.log") + [
                    " ".join(json.loads(c)["argv"]) for c in hooks.logged("systemctl.jsonl")
                ]
                per_run.append((calls, commands))
                if charm == "fan" and hook == "config-changed":
                    sample = {
                        hook: "; ".join(commands),
                        "tools": dict(Counter(c.split()[0] for c in calls)),
                    }
                    status = next((c for c in calls if c.startswith("status-set")), "none")
            counts[hook][charm] = {
                "hook_tools": median([len(c) for c, _ in per_run]),
                "commands": median([len(m) for _, m in per_run]),
                "mutating": median([sum(_mutating(x) for x in m) for _, m in per_run]),
            }
    times: dict[str, dict[str, list[float]]] = {h: {c: [] for c in CHARMS} for h in HOOKS}
    for i in range(request["reps"]):
        for hook in HOOKS:
            for charm in CHARMS if i % 2 == 0 else reversed(CHARMS):
                times[hook][charm].append(hooks.run(charm, hook))
    hooks.logged("calls.log")
    hooks.run("fan", "config-changed", python_args=("-X", "importtime"))
    imports = _imports(hooks.last_stderr)
    return {
        "reps": request["reps"],
        "counting_reps": request["counting_reps"],
        "times": times,
        "counts": counts,
        "sample": sample,
        "status": status,
        "setup_commands": len(setup_commands),
        "imports": imports,
    }


def _imports(stderr: str, top: int = 12) -> list[list[Any]]:
    """The slowest imports at the top level (cumulative), from -X importtime's report."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # nested imports are indented further
            rows.append([name.strip(), int(cumulative)])
    return sorted(rows, key=lambda r: -r[1])[:top]


if __name__ == "__main__":
    common.main(run, work)
