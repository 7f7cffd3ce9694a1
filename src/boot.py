#!/usr/bin/env python3
"""Boot path of the `vxlan` data plane, run by fan-networking.service before containers start.

No Juju is involved at boot: this reads the plan the charm last applied and converges the
kernel to it with the same code a hook uses, so the fan returns with the same addresses.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dataplane import APPLIED_FILE, ApplyError, read_applied
from machine import CommandError, Machine
from vxlan import VxlanPlane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--root", default="/", help="where the charm's files live (tests use a temporary root)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="fan-networking: %(message)s")
    machine = Machine(args.root)
    dataplane, fans = read_applied(machine)
    if dataplane != "vxlan" or not fans:
        logging.info("no vxlan fan recorded in %s", machine.path(APPLIED_FILE))
        return 0
    try:
        changes = VxlanPlane(machine).apply_kernel(fans)
    except (ApplyError, CommandError) as e:
        logging.error("could not bring the fan up: %s", e)
        return 1
    logging.info("fan up on %s (%d changes)", ", ".join(f.bridge for f in fans), len(changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
