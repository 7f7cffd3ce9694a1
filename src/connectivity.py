"""The `check-connectivity` probe: ping every peer's gateway over the overlay."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from machine import CommandError, Machine
from plan import LocalFan, PeerRoute

MAX_PARALLEL = 32
_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_RTT = re.compile(r"= [\d.]+/([\d.]+)/")


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    unit: str
    segment: str
    gateway: str
    sent: int
    received: int
    rtt_ms: float | None  # average round trip; None when nothing came back

    @property
    def reachable(self) -> bool:
        return self.received > 0

    @property
    def loss_percent(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 100.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "segment": self.segment,
            "gateway": self.gateway,
            "loss": f"{self.loss_percent:.0f}%",
            "rtt-ms": self.rtt_ms,
            "reachable": self.reachable,
        }


def probe_peers(machine: Machine, fans: Sequence[LocalFan], count: int) -> list[ProbeResult]:
    """Ping each peer's gateway from this host's gateway, so replies come back over the overlay."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        futures = [pool.submit(_probe, machine, local, peer, count) for local in fans for peer in local.peers]
        return [f.result() for f in futures]


def _probe(machine: Machine, local: LocalFan, peer: PeerRoute, count: int) -> ProbeResult:
    argv = [
        "ping",
        "-n",
        "-q",
        "-c",
        str(count),
        "-i",
        "0.2",
        "-W",
        "1",
        "-I",
        str(local.gateway),
        str(peer.gateway),
    ]
    try:
        output = machine.run(argv, check=False).stdout
    except CommandError:
        output = ""
    summary = _SUMMARY.search(output)
    rtt = _RTT.search(output)
    return ProbeResult(
        peer.unit,
        str(peer.segment),
        str(peer.gateway),
        int(summary.group(1)) if summary else count,
        int(summary.group(2)) if summary else 0,
        float(rtt.group(1)) if rtt else None,
    )


def render_table(rows: Sequence[ProbeResult]) -> str:
    """One row per peer: unit, segment, gateway, loss and round-trip time."""
    header = ("unit", "segment", "gateway", "loss", "rtt")
    lines = [header] + [
        (
            r.unit,
            r.segment,
            r.gateway,
            f"{r.loss_percent:.0f}%",
            f"{r.rtt_ms:.2f} ms" if r.rtt_ms is not None else "unreachable",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip() for row in lines
    )
