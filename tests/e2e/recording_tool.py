#!/usr/bin/env python3
"""Stands in front of a real tool (`ip`, `bridge`, `nft`, `sysctl`) on an e2e lab machine.

Installed as a symlink named like the tool, first on a machine's PATH (tests/e2e/
test_failures_e2e.py): it records every call, then runs the real tool found further down
PATH, so the kernel sees exactly what the charm sent.

- $RECORD_LOG: every call is appended as JSON: {"argv": [...], "stdin": "..." or null}.
- $RECORD_FAIL: a JSON file holding a list of failure rules, each
  {"prefix": "ip -batch", "contains": "route", "times": 1, "half": true}: a call whose
  command line starts with `prefix` (and whose input holds `contains`, if given) fails
  with exit 1, `times` times; with `half`, the first half of its batch input is sent to
  the real tool first, as when a batch stops at a bad line.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

tool = Path(sys.argv[0]).name
args = sys.argv[1:]
here = str(Path(sys.argv[0]).parent.resolve())
search = os.pathsep.join(
    p for p in os.environ.get("PATH", "").split(os.pathsep) if p and str(Path(p).resolve()) != here
)
real = shutil.which(tool, path=search)
batch = "-batch" in args or args[-2:] == ["-f", "-"]
stdin = sys.stdin.read() if batch else None
with open(os.environ["RECORD_LOG"], "a") as log:
    log.write(json.dumps({"argv": [tool, *args], "stdin": stdin}) + "\n")

command = " ".join([tool, *args])
rules_file = os.environ.get("RECORD_FAIL")
if rules_file and Path(rules_file).exists():
    rules = json.loads(Path(rules_file).read_text() or "[]")
    for rule in rules:
        if rule.get("times", 0) <= 0 or not command.startswith(rule["prefix"]):
            continue
        if rule.get("contains") and rule["contains"] not in (stdin or ""):
            continue
        rule["times"] -= 1
        Path(rules_file).write_text(json.dumps(rules))
        sent = 0
        if rule.get("half") and stdin:
            lines = stdin.splitlines(keepends=True)
            sent = len(lines) // 2
            if sent:
                subprocess.run([real or tool, *args], input="".join(lines[:sent]), text=True, check=False)
        print(f"{tool}: injected failure after {sent} lines", file=sys.stderr)
        sys.exit(1)

if real is None:
    print(f"{tool}: not found", file=sys.stderr)
    sys.exit(127)
sys.exit(subprocess.run([real, *args], input=stdin, text=True, check=False).returncode)
