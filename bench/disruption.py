"""Packets lost by running traffic while the fan changes under it.

Two machines with the real charm's fan and a container each; container 1 pings
container 2 at 100 packets/s in two flows at once, small (56-byte payload) and large
(1372 bytes, DF: fits both MTUs used here), from a second before each change until 1.5 s
after it. Changes go through the model as an operator's would: a second mapping added
and removed, a third machine's unit joining and leaving, and `mtu` 1450 -> 1400 and back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from bench import common
from bench.common import table
from bench.labfan import MAPPING, fan_lab, flow

SECOND = "10.123.0.0/16=251.0.0.0/8"
LARGE = 1372  # + 28 = 1400: fits the smaller MTU too


def run(quick: bool) -> None:
    reps = 1 if quick else 2
    rows: list[list[Any]] = []
    with fan_lab("x") as (lab, model):
        c1, c2 = lab.machines["h1"].containers[0], lab.machines["h2"].containers[0]
        joined: list[Any] = []

        def join() -> None:
            # A new machine each time (a machine's name and files are not reused).
            machine = lab.add_machine(f"j{len(joined) + 1}", f"10.123.3.{30 + len(joined)}")
            joined.append(model.add_unit(machine))

        def leave() -> None:
            unit = joined[-1]
            model.remove_unit(unit)
            lab.remove_machine(unit.machine)

        changes: list[tuple[str, Callable[[], None]]] = [
            ("mapping added", lambda: model.set_config(fan_config=f"{MAPPING} {SECOND}")),
            ("mapping removed", lambda: model.set_config(fan_config=MAPPING)),
            ("peer joins", join),
            ("peer leaves", leave),
            ("mtu 1450 -> 1400", lambda: model.set_config(mtu=1400)),
            ("mtu 1400 -> 1450 (mtu=0)", lambda: model.set_config(mtu=0)),
        ]
        for _ in range(reps):
            for name, change in changes:
                with contextlib.ExitStack() as stack:
                    small = stack.enter_context(flow(lab, c1, str(c2.address.ip)))
                    large = stack.enter_context(flow(lab, c1, str(c2.address.ip), size=LARGE))
                    hooks = model.hooks_run
                    change()
                    hooks = model.hooks_run - hooks
                statuses = {u.status[0] for u in model.units.values()}
                rows.append([
                    name, hooks, small["sent"], small["lost"], large["sent"], large["lost"],
                    ",".join(sorted(statuses)),
                ])  # fmt: skip
    table(
        "disruption: packets lost by two 100 packets/s ping flows container -> container during a change",
        ["change", "hooks", "small sent", "small lost", "large sent", "large lost", "units after"],
        rows,
        notes=[
            "lost = sent - received - 1 (the packet sent just before ping stops may still be in flight)",
            f"small = 56-byte payload; large = {LARGE}-byte payload with DF (a 1400-byte packet)",
            "hooks = charm hooks the change ran across all units (the flows span all of them)",
            "target: 0 lost, except where the change itself must break the flow",
        ],
    )  # fmt: skip


if __name__ == "__main__":
    common.main(run)
