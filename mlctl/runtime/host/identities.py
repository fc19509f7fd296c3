"""The unprivileged user a deployment's instances run as when mlctl runs as root.

Each deployment of an endpoint gets a uid (and a group of the same number) of its own, derived from the
endpoint's tag and the deployment's name, in a range no login account, system user or subordinate id
range of `useradd` uses (0x40000000 + 24 bits). So one deployment's instances cannot open another's
socket folder, the project's `.mlctl/secrets/`, or anything else only root may. When mlctl does not run
as root, instances run as mlctl's own user (it cannot give them another); docs/threat-model.md says
what that leaves open. Standard library only (the endpoint host imports it).
"""

from __future__ import annotations

import hashlib
import os

BASE_UID = 0x4000_0000
SPAN = 2**24


def deployment_uid(endpoint_tag: str, deployment: str) -> int:
    """Pure: the uid of the instances of `deployment` in the endpoint whose tag is `endpoint_tag`."""
    digest = hashlib.sha256(f"{endpoint_tag}/{deployment}".encode()).digest()
    return BASE_UID + int.from_bytes(digest[:4], "big") % SPAN


def instance_uid(endpoint_tag: str, deployment: str) -> int | None:
    """The uid the instances of `deployment` run as: their own when mlctl runs as root, else None
    (mlctl's own user)."""
    return deployment_uid(endpoint_tag, deployment) if os.geteuid() == 0 else None
