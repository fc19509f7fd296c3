"""Where the scoring servers of mlctl's Serve applications listen, and the secret that lets the hosts in.

Each replica's scoring server listens on its node's address at a port of its own and registers it in
the cluster's key-value store (Ray's internal KV, namespace `mlctl`, key `<application>/<replica id>`),
so an endpoint host sends requests straight to the server: one hop, no Serve proxy, no relay. The hop
secret of an endpoint (key `<endpoint prefix>hop`) is made once, given to its replicas with their
constructor arguments and to its hosts with their spec; a server answers only requests that carry it.

Run as `python -m mlctl.runtime.ray.directory ADDRESS APPLICATION`, it prints the application's running
servers as JSON, `null` when Serve has no such application (what the host's "serve" launcher reads when a
replica was replaced); needs Ray.
"""

from __future__ import annotations

import json
import secrets
import sys

NAMESPACE = "mlctl"
HOP_HEADER = "X-Mlctl-Hop"  # the request header that carries the hop secret


def _kv():
    from ray.experimental import internal_kv

    return internal_kv


def register(application: str, replica_id: str, entry: dict) -> None:
    """(In a replica) record where its server listens: {"address": "tcp:IP:PORT", "node_id", "node_ip"}."""
    _kv()._internal_kv_put(f"{application}/{replica_id}", json.dumps(entry), namespace=NAMESPACE)


def unregister(application: str, replica_id: str) -> None:
    _kv()._internal_kv_del(f"{application}/{replica_id}", namespace=NAMESPACE)


def forget(applications: list[str]) -> None:
    """Remove the entries of these (deleted) applications."""
    for name in applications:
        _kv()._internal_kv_del(f"{name}/", del_by_prefix=True, namespace=NAMESPACE)


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
    from mlctl.runtime.ray import cluster

    address, application = argv
    try:
        cluster.connect(address)
        print(json.dumps(servers(application)))
    except MlctlError as e:
        print(e.diagnostics[0].summary, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
