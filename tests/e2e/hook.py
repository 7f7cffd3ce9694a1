"""Run one hook (or action) of the real charm, through ops.testing, in this process's namespace.

The e2e model starts this with `ip netns exec <machine>`, so every command the charm runs
(`ip`, `bridge`, `nft`, `sysctl`, `ping`) acts on that machine's kernel state. It reads a
JSON request on stdin and prints the resulting status and relation data as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

from ops import testing

import charm

PEER_RELATION_ID = 1
JUJU_INFO_RELATION_ID = 2


def main() -> None:
    request: dict[str, Any] = json.load(sys.stdin)
    charm.MACHINE_ROOT = Path(request["root"])  # this machine's files
    ctx = testing.Context(
        charm.FanNetworkingCharm,
        app_name=request["app"],
        unit_id=request["unit_id"],
        machine_id=request["machine_id"],
    )
    peers = testing.PeerRelation(
        "fan-peers",
        id=PEER_RELATION_ID,
        peers_data={int(k): v for k, v in request["peers"].items()},
        local_unit_data=request["unit_data"],
        local_app_data=request["app_data"],
    )
    juju_info = testing.SubordinateRelation("juju-info", id=JUJU_INFO_RELATION_ID, remote_app_name="ubuntu")
    address = testing.Address(request["address"], cidr=request["cidr"])
    state = testing.State(
        config=request["config"],
        leader=request["leader"],
        relations={peers, juju_info},
        networks={
            testing.Network(
                "juju-info", bind_addresses=[testing.BindAddress([address], interface_name="eth0")]
            )
        },
    )
    response: dict[str, Any] = {}
    event = request["event"]
    if event == "action":
        try:
            out = ctx.run(ctx.on.action(request["action"], params=request.get("params", {})), state)
        except testing.ActionFailed as failure:
            response["failure"] = failure.message
            out = cast("testing.State", failure.state)
        response["results"] = ctx.action_results
    else:
        remote = request.get("remote_unit")
        events = {
            "install": ctx.on.install,
            "start": ctx.on.start,
            "config_changed": ctx.on.config_changed,
            "update_status": ctx.on.update_status,
            "upgrade_charm": ctx.on.upgrade_charm,
            "leader_elected": ctx.on.leader_elected,
            "stop": ctx.on.stop,
            "remove": ctx.on.remove,
        }
        if event in events:
            out = ctx.run(events[event](), state)
        elif event == "peer_joined":
            out = ctx.run(ctx.on.relation_joined(peers, remote_unit=remote), state)
        elif event == "peer_changed":
            out = ctx.run(ctx.on.relation_changed(peers, remote_unit=remote), state)
        elif event == "peer_departed":
            out = ctx.run(ctx.on.relation_departed(peers, remote_unit=remote, departing_unit=remote), state)
        else:
            raise SystemExit(f"unknown event {event}")
    relation = out.get_relation(PEER_RELATION_ID)
    response.update(
        logs=[f"{line.level} {line.message}" for line in ctx.juju_log],
        status=[out.unit_status.name, out.unit_status.message],
        unit_data=dict(relation.local_unit_data),
        app_data=dict(relation.local_app_data),
    )
    print(json.dumps(response))


if __name__ == "__main__":
    main()
