#!/usr/bin/env python3
"""A stand-in for system tools that cannot run on the test machine, installed on PATH.

`fanctl` needs Ubuntu's FAN-patched kernel, `systemctl` needs systemd (not running here),
and the charm's unit tests must never touch the root network namespace, so `ip`,
`bridge`, `nft`, `sysctl`, `modprobe` and `ping` are faked there too. (The e2e suite runs
the real `ip`, `bridge`, `nft`, `sysctl` and `ping` inside network namespaces.)

Every call is appended to $FAKE_LOG as JSON ({"argv": [...], "stdin": ...}). Behaviour:
- fanctl up/down --bridge=B: creates/removes $FAKE_ROOT/sys/class/net/B (what the
  charm checks to see whether a fan is up). With FAKE_FANCTL_BRIDGES=1 (the e2e suite)
  it also creates/deletes a real bridge B holding the gateway in the current network
  namespace, as fanctl does (without the fan-map tunnel, which needs the FAN kernel), and
  like fanctl refuses to take down a bridge that still has ports.
- systemctl enable/disable/is-enabled X: a marker in
  $FAKE_ROOT/etc/systemd/system/multi-user.target.wants/X.
- ip -j ... addr show: prints $FAKE_ROOT/fake/ip-addr.json ([] if absent); other reads print [].
- ping: reports replies unless the target is listed in $FAKE_ROOT/fake/ping-down.
- $FAKE_FAIL: a prefix of the joined command line that fails with exit 1 (e.g. "fanctl up").
  With $FAKE_FAIL_SKIP=N the first N matching calls succeed (counted in
  $FAKE_ROOT/fake/fail-seen), e.g. the second `ip -batch` of a hook fails, not the first.
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
    skip = int(os.environ.get("FAKE_FAIL_SKIP") or 0)
    seen = 0
    if skip:
        counter = root / "fake" / "fail-seen"
        seen = int(counter.read_text()) if counter.exists() else 0
        counter.parent.mkdir(parents=True, exist_ok=True)
        counter.write_text(str(seen + 1))
    if seen >= skip:
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
    import subprocess

    # fanctl derives the bridge and its address from the mapping, as the charm does.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    import fan

    net = root / "sys/class/net"
    underlay = option("-u") or ""
    (mapping,) = fan.parse_fan_config(f"{underlay}={option('-o')}")
    bridge = option("--bridge") or fan.bridge_name(mapping)
    real = os.environ.get("FAKE_FANCTL_BRIDGES") == "1"
    if args[:1] == ["up"]:
        (net / bridge).mkdir(parents=True, exist_ok=True)
        if real:
            segment = fan.host_segment(mapping, underlay.split("/")[0])
            for argv in (
                ["ip", "link", "add", "name", bridge, "mtu", "1450", "type", "bridge"],
                ["ip", "addr", "add", f"{segment.network_address + 1}/{segment.prefixlen}", "dev", bridge],
                ["ip", "link", "set", "dev", bridge, "up"],
            ):
                subprocess.run(argv, check=True)
    elif args[:1] == ["down"]:
        if real:
            ports = subprocess.run(
                ["ip", "-br", "link", "show", "master", bridge], capture_output=True, text=True
            )
            if ports.stdout.strip():
                print(f"fanctl: {bridge}: in use, will not destroy", file=sys.stderr)
                sys.exit(1)
            subprocess.run(["ip", "link", "del", "dev", bridge], check=True)
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
