"""Helpers shared by the benchmarks: statistics, tables, namespace-local Python workers."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHONPATH = os.pathsep.join(str(REPO / d) for d in ("src", "lib", ""))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: Sequence[float]) -> float:
    """The 90th percentile (nearest rank), so it is always a measured value."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, -(-9 * len(ordered) // 10) - 1)]


def table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()
) -> str:
    """A plain-text table: a title line, aligned columns, then notes."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [title, ""]
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", *notes] if notes else []
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def worker(ns: str, module: str, request: dict[str, Any], timeout: float = 600) -> Any:
    """Run `python -m <module> --worker` inside namespace `ns`; it reads JSON and prints JSON."""
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", module, "--worker"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} worker failed in {ns}:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(run: Callable[[bool], object], work: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """A benchmark module's entry point: `--quick`, and `--worker` for the part that runs in a
    namespace (`work` reads the request as JSON on stdin and its result is printed as JSON)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    if work is not None:
        parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if work is not None and args.worker:
        print(json.dumps(work(json.load(sys.stdin))))
        return
    run(args.quick)


def require_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("the benchmarks build network namespaces: run them as root")
