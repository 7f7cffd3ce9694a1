"""What a charm's `dispatch` runs, for the hooks benchmark: `ops.main` on one of two charms.

BENCH_CHARM=fan: the real FanNetworkingCharm from src/charm.py. Identical to running
src/charm.py as `dispatch` does, except that MACHINE_ROOT (the charm's module-level root
for its files) is set from BENCH_MACHINE_ROOT first, so the machine's files go to a
throwaway directory; the kernel work is real (the benchmark runs this in a namespace).
BENCH_CHARM=bare: a CharmBase that observes nothing, dispatched the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import ops


class BareCharm(ops.CharmBase):
    """The floor: ops.main with the same metadata, and no handlers."""


if __name__ == "__main__":
    if os.environ["BENCH_CHARM"] == "bare":
        ops.main(BareCharm)
    else:
        import charm

        charm.MACHINE_ROOT = Path(os.environ["BENCH_MACHINE_ROOT"])
        ops.main(charm.FanNetworkingCharm)
