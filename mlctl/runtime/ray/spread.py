"""Scoring servers spread back over a node that joined or rejoined: which replica of an application moves, and the
record of it in the cluster.

Serve replaces a replica lost with its node on a node with room, but never moves a running one: after a node
rejoins, an application's replicas stay crowded on the nodes that remained until the next rollout. So each replica
checks, in a thread of its own (replica.py, every CHECK_S while the alive nodes change, else every RECHECK_S),
whether its application's running replicas crowd fewer nodes than they could: an alive node has room for one more
and holds none of them while another node holds two or more. The choice is pure (`choose`: the highest replica id on
the most crowded node), so every replica makes the same one; the chosen replica records it once in the cluster's KV
(namespace `mlctl`, key `spread:<application>`: the replica, its node, the attempt, the alive nodes) and moves:

1. its server's GET / answers 503 (its retire file, MLCTL_RETIRE_FILE): each endpoint host takes the instance out of
   rotation, lets its requests finish, and releases it (the host's restart of an instance asking to be replaced:
   `directory ... --drained`); the directory lists the replica among the running servers no more;
2. once every host released it (its directory entry is gone; with several hosts, each leaves a mark), or once no
   connection to its server is left open (`clients`: a host that is lost, or that is starting and never used it, holds
   none and releases late or never), or after MOVE_WAIT_S, its server is stopped (SIGTERM: it finishes what it still
   holds) and the replica's own actor (mlctl's, never another) is killed;
3. Serve starts a replacement where its scheduling puts it (SPREAD: round robin over the nodes with room) and the
   hosts' restarts take its server.

A replacement that lands on a crowded node again is moved again, at most MOVES times for one set of alive nodes
(a node that rejoins has a new Ray node id: the count starts again). Ray stays the scheduler.
"""

from __future__ import annotations

import collections
import json
import time

NAMESPACE = "mlctl"
CHECK_S = 5.0  # how often a replica looks at the alive nodes
RECHECK_S = 60.0  # how often it reads its application again while the alive nodes stay the same and nothing moves
MOVES = 3  # moves of one application for one set of alive nodes
MOVE_WAIT_S = 60.0  # how long a moving replica waits for every host's release before its server stops all the same


def choose(running: list[dict], room: set[str]) -> str | None:
    """Pure: the replica to move (the highest replica id on the most crowded node, the lowest node id among equally
    crowded ones), or None; `running` holds the application's running replicas ({replica_id, node_id}), `room` the
    alive nodes with room for one more replica of it."""
    counts = collections.Counter(r["node_id"] for r in running)
    if not (room - set(counts)) or max(counts.values(), default=0) < 2:
        return None
    crowded = min(counts, key=lambda node: (-counts[node], node))
    return max(r["replica_id"] for r in running if r["node_id"] == crowded)


def steady(app: dict) -> list[dict] | None:
    """Pure: the running replicas ({replica_id, node_id}) of an application Serve runs at its target count with
    no replica starting or stopping (nothing moves before), else None."""
    from mlctl.runtime.ray import apps

    replicas = apps.replicas(app)
    running = [{"replica_id": r["replica_id"], "node_id": r["node_id"]} for r in replicas if r["state"] == "RUNNING"]
    if apps.status(app) != "RUNNING" or len(running) != len(replicas) or len(running) != apps.target_replicas(app):
        return None
    return running


def clients(port: int, unix: str | None, tables: str = "/proc/net") -> int:
    """How many connections to a server listening at TCP `port` (and on the unix socket `unix`) are open on this node
    (its network namespace): the endpoint hosts' requests, probes and watches; -1 when the tables cannot be read."""
    count = 0
    try:
        for name in ("tcp", "tcp6"):
            with open(f"{tables}/{name}") as f:
                rows = [line.split() for line in f.read().splitlines()[1:]]
            count += sum(1 for r in rows if len(r) > 3 and r[3] == "01" and int(r[1].rpartition(":")[2], 16) == port)
        if unix:  # an accepted connection is listed with the socket's path, state 03 (connected)
            with open(f"{tables}/unix") as f:
                rows = [line.split() for line in f.read().splitlines()[1:]]
            count += sum(1 for r in rows if len(r) > 7 and r[5] == "03" and r[7] == unix)
    except (OSError, ValueError):
        return -1
    return count


def _kv():
    from ray.experimental import internal_kv

    return internal_kv


def read(application: str) -> dict | None:
    """The last move recorded for the application, None when none was."""
    raw = _kv()._internal_kv_get(f"spread:{application}", namespace=NAMESPACE)
    return json.loads(raw) if raw else None


def moving(application: str) -> str:
    """The replica id of the application's last recorded move ("" when none): while it runs, it is being moved."""
    return (read(application) or {}).get("replica_id") or ""


def forget(application: str) -> None:
    _kv()._internal_kv_del(f"spread:{application}", namespace=NAMESPACE)


class Watch:
    """One replica's look at whether it should move (`check`, called every CHECK_S from its thread)."""

    def __init__(self, application: str, replica_id: str):
        self.application, self.replica_id = application, replica_id
        self.settled: tuple[str, ...] = ()  # the alive nodes when its application was last found spread
        self.at = 0.0

    def check(self) -> dict | None:
        """The move, recorded, when this replica is the one to move now; else None (this process is connected)."""
        from ray._private import state

        from mlctl.runtime.ray import cluster

        available = state.available_resources_per_node()  # the alive nodes only
        nodes = tuple(sorted(available))
        if len(nodes) < 2 or (nodes == self.settled and time.monotonic() - self.at < RECHECK_S):
            return None
        app = (cluster.details().get("applications") or {}).get(self.application)
        running = steady(app) if app else None
        if running is None:
            self.settled = ()
            return None
        needs = cluster.replica_needs(app)
        room = {node for node, free in available.items() if cluster.fits(free, needs)}
        pick = choose(running, room)
        last = read(self.application) or {}
        attempt = int(last.get("attempt") or 0) + 1 if last.get("nodes") == list(nodes) else 1
        if pick is None or attempt > MOVES:
            self.settled, self.at = nodes, time.monotonic()
            return None
        if pick != self.replica_id:
            return None
        node = next(r["node_id"] for r in running if r["replica_id"] == pick)
        used = {r["node_id"] for r in running}
        move = {
            "replica_id": pick,
            "node_id": node,
            "attempt": attempt,
            "nodes": list(nodes),
            "to": sorted(room - used),
        }
        _kv()._internal_kv_put(f"spread:{self.application}", json.dumps(move), namespace=NAMESPACE)
        return move
