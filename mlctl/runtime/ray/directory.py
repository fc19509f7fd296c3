"""Where the scoring servers of mlctl's Serve applications listen, and the secret that lets the hosts in.

Each replica's scoring server listens on its node's address at a port of its own and registers it in
the cluster's key-value store (Ray's internal KV, namespace `mlctl`, key `<application>/<replica id>`),
so an endpoint host sends requests straight to the server: one hop, no Serve proxy, no relay. The hop
secret of an endpoint (key `<endpoint prefix>hop`) is made once, given to its replicas with their
constructor arguments and to its hosts with their spec; a server answers only requests that carry it.

A replica Serve stops (scaled down, or its application deleted) keeps its entry and its server until the host
that used it releases it (`release`: the entry deleted, after the host drained it), bounded by RELEASE_S:
Serve chooses which replicas a scale-down stops, and the host learns which from the directory
(`stopping`), takes them out of rotation and drains them before their servers end.

Run as `python -m mlctl.runtime.ray.directory ADDRESS APPLICATION [--target N] [--release ID ... [--holder I
--holders N]] [--wait S --other-than ID ...]`, it first releases the named replicas and sets the application's
replica count, then prints what the host's "serve" launcher reads (`state`) as JSON, `null` when Serve has no such
application (with `--wait`, once a server of a replica not named runs, or after S seconds); needs Ray.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys

NAMESPACE = "mlctl"
HOP_HEADER = "X-Mlctl-Hop"  # the request header that carries the hop secret
WAIT_POLL_S = 0.5  # between two reads of `--wait`
RELEASE_S = 30.0  # how long a stopping replica's server waits for its host's release (then it drains and ends)


def _kv():
    from ray.experimental import internal_kv

    return internal_kv


def register(application: str, replica_id: str, entry: dict) -> None:
    """(In a replica) record where its server listens: {"address": "tcp:IP:PORT", "node_id", "node_ip"}."""
    _kv()._internal_kv_put(f"{application}/{replica_id}", json.dumps(entry), namespace=NAMESPACE)


def unregister(application: str, replica_id: str) -> None:
    _kv()._internal_kv_del(f"{application}/{replica_id}", namespace=NAMESPACE)


def release(application: str, replica_ids: list[str], holder: str = "", holders: int = 1) -> None:
    """(The host's launcher, through `main`) these replicas' servers are drained: they may end when Serve stops
    them. An endpoint with several hosts (in the cluster: `holders` of them, this one `holder`) releases a server
    once every host did (each leaves a mark, `released:<application>/<replica id>/<holder>`); a host that is
    lost never does, and the server then ends after RELEASE_S."""
    kv = _kv()
    for replica_id in replica_ids:
        if holders > 1:
            marks = f"released:{application}/{replica_id}/"
            kv._internal_kv_put(f"{marks}{holder}", b"1", namespace=NAMESPACE)
            if len(kv._internal_kv_list(marks, namespace=NAMESPACE)) < holders:
                continue
            kv._internal_kv_del(marks, del_by_prefix=True, namespace=NAMESPACE)
        unregister(application, replica_id)


def released(application: str, replica_id: str) -> bool:
    """(In a stopping replica) has its host released it (its entry is gone)?"""
    return _kv()._internal_kv_get(f"{application}/{replica_id}", namespace=NAMESPACE) is None


def forget(applications: list[str]) -> None:
    """Remove the entries of these (deleted) applications."""
    for name in applications:
        _kv()._internal_kv_del(f"{name}/", del_by_prefix=True, namespace=NAMESPACE)
        _kv()._internal_kv_del(f"released:{name}/", del_by_prefix=True, namespace=NAMESPACE)


def entries(application: str) -> dict[str, dict]:
    """{replica id: entry} of every server the application's replicas registered (also dead ones)."""
    kv = _kv()
    found = {}
    for key in kv._internal_kv_list(f"{application}/", namespace=NAMESPACE):
        raw = kv._internal_kv_get(key, namespace=NAMESPACE)
        if raw:
            found[key.decode().rpartition("/")[2]] = json.loads(raw)
    return found


def running(app: dict, registered: dict[str, dict]) -> list[dict]:
    """Pure: the servers of an application's RUNNING replicas ({replica_id, address, node_id, node_ip}), in
    the order of their replica ids; `app` is the application's details, `registered` its `entries`."""
    from mlctl.runtime.ray import apps

    return [
        {"replica_id": r["replica_id"], "node_id": r["node_id"], **registered[r["replica_id"]]}
        for r in apps.replicas(app)
        if r["state"] == "RUNNING" and r["replica_id"] in registered
    ]


def servers(application: str) -> list[dict] | None:
    """The running servers of an application, None when Serve has no such application (this process is
    connected to the cluster)."""
    from mlctl.runtime.ray import cluster

    app = (cluster.details().get("applications") or {}).get(application)
    return running(app, entries(application)) if app else None


def stopping(app: dict, registered: dict[str, dict]) -> list[str]:
    """Pure: the replica ids of the application's registered servers that Serve is stopping (a scale-down)."""
    from mlctl.runtime.ray import apps

    return [r["replica_id"] for r in apps.replicas(app) if r["state"] == "STOPPING" and r["replica_id"] in registered]


def state(application: str, room: bool = False) -> dict | None:
    """What the host's launcher reads of an application: its running `servers`, the replicas Serve is
    `stopping`, its `target` count, its replicas still `starting`, and (with `room`, asked while a scale-up
    waits) `no_room`: why the cluster cannot place them ("" when it can, or when that is not known); None when
    Serve has no such application."""
    from mlctl.runtime.ray import apps, cluster

    app = (cluster.details().get("applications") or {}).get(application)
    if not app:
        return None
    registered = entries(application)
    starting = [r for r in apps.replicas(app) if r["state"] in ("STARTING", "PENDING_MIGRATION", "RECOVERING")]
    return {
        "servers": running(app, registered),
        "stopping": stopping(app, registered),
        "target": apps.target_replicas(app),
        "starting": len(starting),
        "no_room": _no_room(app) if room and starting else "",
    }


def _no_room(app: dict) -> str:
    """cluster.no_room, or "" when the cluster's resources cannot be read now (the state is read all the same)."""
    from mlctl.runtime.ray import cluster

    try:
        return cluster.no_room(app)
    except Exception:
        return ""


def waited(application: str, room: bool, wait_s: float, other_than: set[str]) -> dict | None:
    """`state`, read again every WAIT_POLL_S for up to `wait_s` seconds until it lists a running server whose replica
    is not in `other_than` (a lost replica's replacement: one process connected for the whole wait, instead of a
    process per read, each importing Ray and connecting: seconds each on a busy machine); None as `state`."""
    import time

    deadline = time.monotonic() + wait_s
    found = state(application, room=room)
    while (
        found is not None
        and time.monotonic() < deadline
        and not any(s["replica_id"] not in other_than for s in found["servers"])
    ):
        time.sleep(WAIT_POLL_S)
        found = state(application, room=room)
    return found


def hop_secret(endpoint_prefix: str) -> str:
    """The endpoint's hop secret, made on first use (the first writer wins when two applies race)."""
    kv = _kv()
    key = f"{endpoint_prefix}hop"
    kv._internal_kv_put(key, secrets.token_urlsafe(32), overwrite=False, namespace=NAMESPACE)
    return kv._internal_kv_get(key, namespace=NAMESPACE).decode()


def forget_secret(endpoint_prefix: str) -> None:
    _kv()._internal_kv_del(f"{endpoint_prefix}hop", namespace=NAMESPACE)


def main(argv: list[str]) -> int:
    from mlctl.errors import MlctlError
    from mlctl.runtime.ray import apps, cluster

    parser = argparse.ArgumentParser(prog="python -m mlctl.runtime.ray.directory")
    parser.add_argument("address")
    parser.add_argument("application")
    parser.add_argument("--target", type=int, help="set the application's replica count first")
    parser.add_argument("--release", nargs="*", default=[], help="release these replicas' servers first")
    parser.add_argument("--holder", default="", help="the releasing host, one of --holders")
    parser.add_argument("--holders", type=int, default=1, help="the hosts that must all release a server")
    parser.add_argument("--room", action="store_true", help="also say why starting replicas cannot be placed")
    parser.add_argument("--wait", type=float, default=0.0, help="read again until a server not in --other-than runs")
    parser.add_argument("--other-than", nargs="*", default=[], help="the replicas --wait does not count")
    args = parser.parse_args(argv)
    try:
        cluster.connect(args.address)
        release(args.application, args.release, args.holder, args.holders)
        if args.target is not None and args.application in (cluster.details().get("applications") or {}):
            cluster.scale(args.application, apps.DEPLOYMENT_NAME, args.target)
        print(json.dumps(waited(args.application, args.room, args.wait, set(args.other_than))))
    except MlctlError as e:
        print(e.diagnostics[0].summary, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
