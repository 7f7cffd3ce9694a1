"""`python -m bench [dataplane|programming|hooks|disruption ...] [--quick]`: run benchmarks, print tables.

Run from the repository root as root, with PYTHONPATH=src:lib:. (what `tox -e bench` sets).
Every benchmark builds its own network namespaces (unique prefixes) and removes them,
and every process it started, when it ends, also after a failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench.common import require_root

BENCHMARKS = ("dataplane", "programming", "hooks", "disruption")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer and shorter runs (about 2.5 minutes in all)"
    )
    args = parser.parse_args(argv)
    if unknown := [n for n in args.names if n not in BENCHMARKS]:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    require_root()
    failed = []
    for name in args.names or BENCHMARKS:
        start = time.monotonic()
        print(f"== {name}{' (quick)' if args.quick else ''}\n", flush=True)
        try:
            importlib.import_module(f"bench.{name}").run(args.quick)
        except Exception:  # one benchmark failing does not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"({name} took {time.monotonic() - start:.0f} s)\n", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
