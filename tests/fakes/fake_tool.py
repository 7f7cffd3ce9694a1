#!/usr/bin/env python3
"""A stand-in for system tools that cannot run on the test machine, installed on PATH.

`fanctl` needs Ubuntu's FAN-patched kernel, `systemctl` needs systemd (not running here),
and the charm's unit tests must never touch the root network namespace, so `ip`,
`bridge`, `nft`, `sysctl`, `modprobe` and `ping` are faked there too. (The e2e suite runs
the real `ip`, `bridge`, `nft`, `sysctl` and `ping` inside network namespaces.)

Every call is appended to $FAKE_LOG as JSON ({"argv": [...], "stdin": ...}). Behaviour:
- fanctl up/down --bridge=B: creates/removes $FAKE_ROOT/sys/class/net/B (what the
  charm checks to see whether a fan is up).
- systemctl enable/disable/is-enabled X: a marker in
  $FAKE_ROOT/etc/systemd/system/multi-user.target.wants/X.
- ip -j ... addr show: prints $FAKE_ROOT/fake/ip-addr.json ([] if absent); other reads print [].
- ping: reports replies unless the target is listed in $FAKE_ROOT/fake/ping-down.
- $FAKE_FAIL: a prefix of the joined command line that fails with exit 1 (e.g. "fanctl up").
"""

import json
import os
import sys
from pathlib import Path

tool = Path(sys.argv[0]).name
args = sys.argv[1:]
root = Path(os.environ.get("FAKE_ROOT", "/nonexistent"))
stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"argv": [tool, *args], "stdin": stdin}) + "\n")

command = " ".join([tool, *args])
if os.environ.get("FAKE_FAIL") and command.startswith(os.environ["FAKE_FAIL"]):
    print(f"{tool}: injected failure", file=sys.stderr)
    sys.exit(1)


def option(name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


if tool == "fanctl":
    net = root / "sys/class/net"
    if args[:1] == ["up"]:
        (net / (option("--bridge") or "fan-unknown")).mkdir(parents=True, exist_ok=True)
    elif args[:1] == ["down"]:
        # fanctl derives the bridge from the mapping, as the charm does.
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
        import fan

        (mapping,) = fan.parse_fan_config(f"{option('-u')}={option('-o')}")
        bridge = fan.bridge_name(mapping)
        (net / bridge).rmdir()
elif tool == "systemctl":
    wants = root / "etc/systemd/system/multi-user.target.wants"
    unit = args[-1] if args else ""
    if "enable" in args:
        wants.mkdir(parents=True, exist_ok=True)
        (wants / unit).touch()
    elif "disable" in args:
        (wants / unit).unlink(missing_ok=True)
    elif "is-enabled" in args:
        sys.exit(0 if (wants / unit).exists() else 1)
elif tool == "ip":
    if "-j" in args:
        canned = root / "fake/ip-addr.json"
        print(canned.read_text() if "addr" in args and canned.exists() else "[]")
elif tool == "ping":
    target = args[-1]
    down = root / "fake/ping-down"
    count = int(option("-c") or 3)
    if down.exists() and target in down.read_text().split():
        print(f"{count} packets transmitted, 0 received, 100% packet loss, time 1000ms")
        sys.exit(1)
    print(f"{count} packets transmitted, {count} received, 0% packet loss, time 400ms")
    print("rtt min/avg/max/mdev = 0.040/0.050/0.060/0.010 ms")
elif tool == "nft":
    if args[:1] == ["list"]:
        print("Error: No such file or directory", file=sys.stderr)
        sys.exit(1)
elif tool == "modprobe":
    sys.exit(1)
sys.exit(0)
