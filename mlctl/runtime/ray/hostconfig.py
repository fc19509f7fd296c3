"""The configuration of an endpoint's in-cluster hosts, kept in the cluster: Ray's internal KV, namespace `mlctl`,
key `mlctl-<owner>-<endpoint>-host` (one JSON object), so that a host Ray restarts, or starts on another node,
configures itself from it without mlctl (mlctl/runtime/ray/ingress.py).

It holds what the hosts need: the auth mode, the port, the listen settings, the TLS material (the PEM text of the
certificate, key and client CA), the endpoint's keys, each deployment's serving spec (with its replicas' servers
and the hop secret), the autoscaling settings, traffic and mirror, and a generation that grows with each change
(a host whose configuration is older configures itself again). The keys live here only: never in mlctl's state
file, never in the project's folder, never printed but by `mlctl keys` (docs/runtime.md, "In-cluster hosts").
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from mlctl.runtime.ray.apps import endpoint_prefix

NAMESPACE = "mlctl"


def key(owner: str, endpoint: str) -> str:
    """Pure: the KV key of an endpoint's host configuration."""
    return f"{endpoint_prefix(owner, endpoint)}host"


def _kv():
    from ray.experimental import internal_kv

    return internal_kv


def read(owner: str, endpoint: str) -> dict | None:
    """The endpoint's host configuration, None when the cluster has none (this process is connected to Ray)."""
    raw = _kv()._internal_kv_get(key(owner, endpoint), namespace=NAMESPACE)
    if not raw:
        return None
    found = json.loads(raw)
    return found if isinstance(found, dict) else None


def write(owner: str, endpoint: str, config: dict) -> dict:
    """Store the configuration with its generation one higher than the stored one's; returns what was stored."""
    previous = read(owner, endpoint) or {}
    stored = {**config, "generation": int(previous.get("generation") or 0) + 1}
    _kv()._internal_kv_put(key(owner, endpoint), json.dumps(stored), overwrite=True, namespace=NAMESPACE)
    return stored


def forget(owner: str, endpoint: str) -> None:
    _kv()._internal_kv_del(key(owner, endpoint), namespace=NAMESPACE)


def initial(endpoint: str, auth_mode: str, port: int | None, replicas: int, listen: dict, tls: dict | None) -> dict:
    """Pure: the configuration of a new endpoint's hosts (no deployment yet); keys are added by the caller."""
    return {
        "endpoint": endpoint,
        "auth_mode": auth_mode,
        "port": port,
        "replicas": replicas,
        "listen": listen,
        "tls": tls,
        "keys": None,
        "deployments": {},
        "scaling": {},
        "traffic": {},
        "mirror_traffic": {},
    }


def applied(config: dict, method: str, path: str, body) -> dict:
    """Pure: `config` after the hosts carried out the admin order `method path body` (admin.py's API); orders
    that change no configuration (status, revive, reloads, shutdown) leave it as it is."""
    out = {
        **config,
        "deployments": dict(config.get("deployments") or {}),
        "scaling": dict(config.get("scaling") or {}),
    }
    route = urlsplit(path).path.strip("/").split("/")
    body = body if isinstance(body, dict) else {}
    if route[0] == "deployments" and len(route) >= 2:
        name = route[1]
        verb = route[2] if len(route) > 2 else ""
        if method == "DELETE":
            out["deployments"].pop(name, None)
            out["scaling"].pop(name, None)
        elif method == "POST" and verb in ("", "roll"):
            out["deployments"][name] = body
        elif method == "POST" and verb == "scale" and name in out["deployments"]:
            out["deployments"][name] = {**out["deployments"][name], "instance_count": body.get("instance_count")}
        elif method == "PUT" and verb == "scaling":
            out["scaling"][name] = {
                "scale_settings": body.get("scale_settings"),
                "instance_count": body.get("instance_count"),
            }
    elif route == ["traffic"] and method == "PUT":
        out["traffic"] = dict(body.get("traffic") or {})
        out["mirror_traffic"] = dict(body.get("mirror_traffic") or {})
    elif route == ["auth"] and method == "PUT":
        out["auth_mode"] = body.get("auth_mode")
    return out
