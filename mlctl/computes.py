"""Computes: an endpoint's Azure compute target (`compute: azureml:NAME`, a Kubernetes cluster attached to the
workspace) mapped to a runtime through the project file's `computes:` (compute name -> runtime).

mlctl applies one runtime per run, so the mapping chooses the project's runtime: when the endpoints of the
configuration name computes that the map sends to one runtime, that runtime runs them (unless `--runtime` or
MLCTL_RUNTIME says otherwise for the run); computes sent to two runtimes are an error; a compute the map does
not name runs on the project's runtime, and the plan says so once. Pure, but `configured_computes`, which
reads the configuration's files.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from mlctl.errors import Diagnostic, Severity


def compute_name(value: object) -> str | None:
    """Pure: NAME of `azureml:NAME` (or of a bare NAME); None for anything but a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().removeprefix("azureml:")


def endpoint_computes(docs: Iterable) -> dict[str, tuple[str, object]]:
    """Pure: {compute name: (the endpoint's name, its document)} of the endpoint documents that name one."""
    found: dict[str, tuple[str, object]] = {}
    for doc, kind in docs:
        if kind == "endpoint" and isinstance(doc.data, dict):
            name = compute_name(doc.data.get("compute"))
            if name is not None:
                found.setdefault(name, (str(doc.data.get("name")), doc))
    return found


def configured_computes(project) -> dict[str, tuple[str, object]]:
    """The computes the project's endpoint files name (read as `discover` reads them; problems left to it)."""
    from mlctl.schemas.discovery import discover
    from mlctl.schemas.doccache import DocumentCache

    docs, _, _ = discover(project, DocumentCache.open(project.data_dir))
    return endpoint_computes(docs)


def mapped_runtime(mapping: Mapping[str, str], named: Iterable[str]) -> tuple[str | None, list[str]]:
    """Pure: (the one runtime the computes `named` map to, or None when they map to none), and the computes that
    map elsewhere when they map to several (then the runtime is None too)."""
    runtimes: dict[str, list[str]] = {}
    for name in sorted(set(named)):
        if name in mapping:
            runtimes.setdefault(mapping[name], []).append(name)
    if len(runtimes) == 1:
        return next(iter(runtimes)), []
    return None, [f"{c} -> {r}" for r, cs in sorted(runtimes.items()) for c in cs]


def unmapped_note(mapping: Mapping[str, str], computes: Mapping[str, tuple[str, object]], runtime: str):
    """Pure: one note naming the computes the map does not name, which run on `runtime` (None when none)."""
    left = [f"azureml:{c} (endpoint {e})" for c, (e, _) in sorted(computes.items()) if c not in mapping]
    if not left:
        return None
    return Diagnostic(
        f"compute {', '.join(left)} has no runtime in the project file's computes: it runs on the project's "
        f"runtime, {runtime}",
        "Map it in mlctl.yaml (computes: {NAME: docker}) to choose its runtime.",
        severity=Severity.NOTE,
    )
