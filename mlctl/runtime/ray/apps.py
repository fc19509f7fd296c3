"""The Serve applications mlctl owns: their names, route prefixes and ownership marks.

One Serve application per deployment version: `mlctl-<owner>-<endpoint>-<deployment>-<digest12>`
at the route prefix `/` + that name. `owner` is eight hex digits naming the project (the host and the
project's data folder), so two projects, or another team's applications, never share a name. An
application is mlctl's when its name has the prefix AND its replicas carry MLCTL_OWNER in their
runtime environment (both are checked before mlctl changes or deletes one).
"""

from __future__ import annotations

import hashlib
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from mlctl.errors import MlctlError
from mlctl.privatefiles import ensure_folder, read_private, write_atomic

PREFIX = "mlctl-"
OWNER_VAR = "MLCTL_OWNER"  # the runtime_env variable marking a replica as mlctl's
DEPLOYMENT_NAME = "scorer"
OWNER_ID = re.compile(r"[0-9a-f]{8}")  # the one Serve deployment of every mlctl application


def owner_of(data_dir: str | Path) -> str:
    """The owner id of a project: the one its data folder records (`ray/owner`, written by `remember_owner` when
    the project's endpoint hosts go into the cluster, so a copy of the folder on another machine is the same
    owner), else 8 hex digits of this host's name and the data folder's absolute path."""
    try:
        recorded = read_private(Path(data_dir) / "ray" / "owner", "ray owner").decode().strip()
    except (OSError, MlctlError, UnicodeDecodeError):
        recorded = ""
    if OWNER_ID.fullmatch(recorded):
        return recorded
    key = f"{socket.gethostname()}:{Path(data_dir).resolve()}"
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def remember_owner(data_dir: str | Path, owner: str) -> None:
    """Record the project's owner id in its data folder (what `owner_of` reads first)."""
    folder = ensure_folder(Path(data_dir) / "ray", what="ray", base=Path(data_dir))
    if owner_of(data_dir) != owner or not (folder / "owner").exists():
        write_atomic(folder / "owner", owner.encode() + b"\n", what="ray owner")


@dataclass(frozen=True)
class AppName:
    """A parsed mlctl application name."""

    owner: str
    endpoint: str
    deployment: str
    digest12: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.owner}-{self.endpoint}-{self.deployment}-{self.digest12}"

    @property
    def route_prefix(self) -> str:
        return "/" + str(self)


def app_name(owner: str, endpoint: str, deployment: str, serving_digest: str) -> AppName:
    """Pure: the application that serves this version (`serving_digest` "sha256:<hex>") of a deployment."""
    return AppName(owner, endpoint, deployment, serving_digest.removeprefix("sha256:")[:12])


def deployment_prefix(owner: str, endpoint: str, deployment: str) -> str:
    """Pure: the name prefix every version of one deployment's applications shares."""
    return f"{PREFIX}{owner}-{endpoint}-{deployment}-"


def endpoint_prefix(owner: str, endpoint: str | None = None) -> str:
    """Pure: the name prefix of one endpoint's applications (of all the project's without an endpoint)."""
    return f"{PREFIX}{owner}-" + (f"{endpoint}-" if endpoint else "")


def parse(name: str, owner: str, endpoints: dict[str, set[str]] | None = None) -> AppName | None:
    """Pure: the AppName of `name` when it is one of `owner`'s, else None. Endpoint and deployment names
    may hold hyphens, so a name is split at the last hyphen (the digest) and, when `endpoints`
    ({endpoint: {deployments}}) is given, by the known names; without it at the first hyphen."""
    head = f"{PREFIX}{owner}-"
    if not name.startswith(head):
        return None
    rest, _, digest = name[len(head) :].rpartition("-")
    if not rest or len(digest) != 12:
        return None
    for endpoint, deployments in (endpoints or {}).items():
        for deployment in deployments:
            if rest == f"{endpoint}-{deployment}":
                return AppName(owner, endpoint, deployment, digest)
    endpoint, _, deployment = rest.partition("-")
    return AppName(owner, endpoint, deployment, digest) if deployment else None


# ---- reading Serve's details of an application (pure: over the dict cluster.details() returns) ----------


def word(value) -> str:
    """A status as Serve's word ("RUNNING"), whether Serve gave an enum or a string."""
    return str(getattr(value, "value", value) or "")


def _scorer(app: dict) -> dict:
    return (app.get("deployments") or {}).get(DEPLOYMENT_NAME) or {}


def marks(app: dict) -> dict:
    """Pure: the runtime_env variables of an application's replicas (mlctl's marks among them)."""
    options = (_scorer(app).get("deployment_config") or {}).get("ray_actor_options") or {}
    return dict((options.get("runtime_env") or {}).get("env_vars") or {})


def owned(details: dict, owner: str, prefix: str | None = None) -> dict[str, dict]:
    """Pure: {name: application} of the applications that are `owner`'s (name prefix and owner mark both),
    limited to names starting with `prefix` when given."""
    head = prefix or f"{PREFIX}{owner}-"
    return {
        name: app
        for name, app in (details.get("applications") or {}).items()
        if name.startswith(head) and name.startswith(f"{PREFIX}{owner}-") and marks(app).get(OWNER_VAR) == owner
    }


def status(app: dict) -> str:
    return word(app.get("status"))


def target_replicas(app: dict) -> int:
    scorer = _scorer(app)
    return int(scorer.get("target_num_replicas") or (scorer.get("deployment_config") or {}).get("num_replicas") or 0)


def serves(app: dict, serving_digest: str) -> bool:
    """Pure: does the application serve this version of its deployment?"""
    return marks(app).get("MLCTL_SERVING_DIGEST") == serving_digest


def replicas(app: dict) -> list[dict]:
    """Pure: the application's replicas as instances ({index, replica_id, state, node_id, pid, log_file}),
    in the order of their ids."""
    found = sorted(_scorer(app).get("replicas") or [], key=lambda r: r.get("replica_id") or "")
    return [
        {
            "index": i,
            "replica_id": r.get("replica_id"),
            "state": word(r.get("state")),
            "node_id": r.get("node_id"),
            "pid": None,
            "replica_pid": r.get("pid"),
            "log_file": r.get("log_file_path"),
            "ready": word(r.get("state")) == "RUNNING",
        }
        for i, r in enumerate(found)
    ]
