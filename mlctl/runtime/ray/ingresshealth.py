"""Whether each in-cluster endpoint host can answer, as Ray's own tables say: its actor's state in the GCS actor table
and its node's in the node table, read without calling the actor (a call to an actor that Ray is restarting, or
whose node just died, waits until it is back: `show` and a refresh would hang instead of reporting the loss).

A host whose actor is not ALIVE, or is ALIVE on a node the GCS no longer holds alive, gets a report of its own here
(`lost`), which `show` prints and a refresh takes for drift (EndpointObserved.hosts_lost) until Ray placed it again
and it serves.
"""

from __future__ import annotations

# what each actor state means for a host, as `show` says it (ray's gcs.proto ActorTableData.ActorState)
STATES = {
    "DEPENDENCIES_UNREADY": "its actor waits to be created",
    "PENDING_CREATION": "its actor waits for Ray to place it",
    # its bundle waits for an alive node without another host of the endpoint (ingressplacement.py), or its process
    # is starting again
    "RESTARTING": "Ray is restarting its actor: it waits for a node of its own",
    "DEAD": "its actor is dead: `mlctl apply` starts it again",
}


def actor_info(handle) -> dict:
    """The GCS actor table's entry of an actor ({} when the GCS has none): `State`, `Address.NodeID`, `Pid`,
    `NumRestarts`, ... (ray._private.state.actors: no dashboard needed, which the cluster may not run)."""
    from ray._private import state

    return dict(state.actors(handle._actor_id.hex()) or {})


def alive_nodes() -> dict[str, str]:
    """{node id (hex): node address} of the nodes the GCS holds alive."""
    from mlctl.runtime.ray import cluster

    return {n["NodeID"]: n.get("NodeManagerAddress", "") for n in cluster.nodes() if n.get("Alive")}


def lost(index: int, info: dict, alive: dict[str, str], last_ip: str = "") -> dict | None:
    """Pure: the status report (ingresshosts.reports' shape) of host `index` when its actor cannot answer now, by
    its actor table entry `info` and the alive nodes `alive` ({id: address}); None when the actor is ALIVE on an
    alive node (then it is asked). `last_ip`: the address its node had, when known."""
    state = str(info.get("State") or "DEAD")
    node = str((info.get("Address") or {}).get("NodeID") or "")
    ip = str((info.get("Address") or {}).get("IPAddress") or last_ip or "")
    if state == "ALIVE" and node in alive:
        return None
    if state == "ALIVE":
        problem = f"its node {ip or node[:12]} is not alive: Ray restarts its actor on another node"
    else:
        problem = STATES.get(state, f"its actor is {state}")
        if node and node not in alive and state == "RESTARTING":
            problem += f" (its node {ip or node[:12]} was lost)"
    return {
        "index": index,
        "node_ip": ip if node in alive or state == "ALIVE" else "",
        "node_id": node if node in alive or state == "ALIVE" else "",
        "pid": None,
        "actor_pid": None,
        "port": None,
        "running": False,
        "generation": 0,
        "problem": problem,
        "status": None,
        "actor_state": state,
    }


def lost_hosts(hosts: list[dict]) -> list[str]:
    """Pure: one line per host of `hosts` (merged_status's `hosts`) that does not serve: index, where, why."""
    return [
        f"host {h['index']}"
        + (f" on {h['node_ip']}" if h.get("node_ip") else "")
        + f": {h.get('problem') or 'not running'}"
        for h in hosts
        if not h.get("running")
    ]
