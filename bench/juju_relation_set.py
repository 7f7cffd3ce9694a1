"""The fake `relation-set` of the hooks benchmark: merges the JSON on stdin into a databag file."""

import json
import os
import sys
from pathlib import Path

args = sys.argv[1:]
rid = args[args.index("-r") + 1].rsplit(":", 1)[-1]
unit = os.environ["JUJU_UNIT_NAME"]
target = unit.split("/")[0] if "--app" in args else unit.replace("/", "-")
path = Path(os.environ["FAKE_JUJU"]) / f"rel-{rid}-{target}.json"
data = json.loads(path.read_text()) if path.exists() else {}
for key, value in json.loads(sys.stdin.read()).items():
    if value == "":
        data.pop(key, None)
    else:
        data[key] = value
path.write_text(json.dumps(data))
