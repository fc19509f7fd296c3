"""Labels on everything mlctl makes in a Docker engine: `mlctl.managed=1` plus labels saying what it is,
so mlctl finds its own objects and never touches anyone else's.

Pure functions. Keys are `mlctl.<name>` (`mlctl.kind`, `mlctl.spec-digest`, `mlctl.project`, ...); the
kinds the image half makes: `base` (mlctl's own base image), `image` (an environment's image), `context`
(an environment's `build:` context), `probe` (a throwaway container reading an image's Python).

Labels are inherited: an image built FROM an mlctl image, and every container made from one, carries
that image's labels unless it sets its own. So select by `mlctl.kind` (and the specific labels), never by
`mlctl.managed` alone; an image is mlctl's only when it also carries the tag mlctl gave it
(`imagecache.is_own`).
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "mlctl."
MANAGED = "mlctl.managed"
KIND = "mlctl.kind"


def key(name: str) -> str:
    """Pure: the label key of `name` ("spec_digest" -> "mlctl.spec-digest")."""
    return name if name.startswith(PREFIX) else PREFIX + name.replace("_", "-")


def managed(kind: str, **specific: str | int | None) -> dict[str, str]:
    """Pure: the labels of an mlctl object of `kind` with its specific labels (None values left out)."""
    out = {MANAGED: "1", KIND: kind}
    out.update({key(k): str(v) for k, v in specific.items() if v is not None})
    return out


def selector(kind: str | None = None, **specific: str | int) -> dict[str, list[str]]:
    """Pure: the `filters=` argument of the SDK's list calls that selects mlctl's objects (of `kind`,
    with these label values)."""
    wanted = [f"{MANAGED}=1"] + ([f"{KIND}={kind}"] if kind else [])
    wanted += [f"{key(k)}={v}" for k, v in specific.items()]
    return {"label": wanted}


def is_managed(labels: Mapping[str, str] | None, kind: str | None = None) -> bool:
    """Pure: is an object with these labels one mlctl made (and of `kind`, when given)?"""
    labels = labels or {}
    return labels.get(MANAGED) == "1" and (kind is None or labels.get(KIND) == kind)


def value(labels: Mapping[str, str] | None, name: str) -> str | None:
    """Pure: the value of mlctl's label `name` on an object (None when absent)."""
    return (labels or {}).get(key(name))
