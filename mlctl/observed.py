"""Observed values: what a runtime reports of each kind, typed; stored in state as JSON.

Every runtime returns these from its drivers (`mlctl.runtime.contract`); the drift rules
(`mlctl.reconciler.rules.DRIFT`) read their fields by name, so a field a rule names must exist here
(tests/reconciler/test_rules.py checks it). `from_json` reads what an earlier mlctl wrote: unknown
keys are kept aside in `extra`, missing ones take their defaults.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mlctl.resources import Kind


@functools.cache
def _field_names(cls) -> tuple[str, ...]:
    """Pure: the reported fields of an Observed class (all but `extra`), looked up once per class."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")


@dataclass(frozen=True)
class Observed:
    """Base of the observed values; `extra` holds runtime-specific facts that no rule reads."""

    kind: ClassVar[Kind]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        """The JSON object stored in state (fields never reported are left out)."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "extra" and getattr(self, f.name) is not None
        }
        return {**self.extra, **out}

    @classmethod
    def from_json(cls, data: dict | None):
        data = dict(data or {})
        names = _field_names(cls)
        known = {k: data.pop(k) for k in list(data) if k in names}
        return cls(**known, extra=data)

    def __bool__(self) -> bool:
        """Did the runtime report anything (an empty value stands for "never observed")?"""
        return bool(self.extra) or any(getattr(self, name) is not None for name in _field_names(type(self)))


@dataclass(frozen=True)
class ModelObserved(Observed):
    kind: ClassVar[Kind] = Kind.MODEL
    model_dir: str | None = None  # where the registered version lives for this runtime
    content_digest: str | None = None  # the digest of what is registered there


@dataclass(frozen=True)
class EnvironmentObserved(Observed):
    kind: ClassVar[Kind] = Kind.ENVIRONMENT
    spec_digest: str | None = None
    not_used_by_runtime: list[str] | None = None  # fields this runtime does not honour


@dataclass(frozen=True)
class ImageObserved(Observed):
    """What an image resolved to on this machine (a virtualenv, a container image). The fields from
    `tag` on are a container image's (the docker runtime); a virtualenv leaves them unset."""

    kind: ClassVar[Kind] = Kind.IMAGE
    path: str | None = None  # a virtualenv's folder, an image's tag
    python_executable: str | None = None
    python_version: str | None = None
    platform: str | None = None
    frozen: list[str] | None = None
    built_with: str | None = None
    notes: list[str] | None = None
    built_at: float | None = None
    tag: str | None = None  # the engine's tag (by content digest)
    image_id: str | None = None  # the engine's id of the image (sha256:...)
    content_digest: str | None = None  # the environment's spec digest and the base image's id, hashed
    base: str | None = None  # the base image it was built on ...
    base_id: str | None = None
    base_reason: str | None = None  # ... and why that base
    site: str | None = None  # where its packages are inside (PYTHONPATH)
    on_chosen_base: bool | None = None  # False: the base chosen now differs (drift: rebuilt on it)


@dataclass(frozen=True)
class EndpointObserved(Observed):
    kind: ClassVar[Kind] = Kind.ENDPOINT
    alive: bool | None = None  # False: its host is not running (drift)
    port: int | None = None
    pid: int | None = None
    scoring_uri: str | None = None
    openapi_uri: str | None = None
    certificate_digest: str | None = None  # of the certificate the host serves (TLS): another one is drift
    hosts_lost: list[str] | None = None  # hosts of the endpoint that do not serve (in-cluster hosts): drift


@dataclass(frozen=True)
class DeploymentObserved(Observed):
    kind: ClassVar[Kind] = Kind.DEPLOYMENT
    state: str | None = None  # the host's word: ready, degraded, ...
    instance_count: int | None = None  # as running (scaled outside mlctl: drift)
    ready_instances: int | None = None
    served_model_digest: str | None = None
    served_code_digest: str | None = None
    serving_digest: str | None = None  # the serving spec the instances run (runtime-internal)
    instances: list[dict] | None = None
    changed_outside: list[str] | None = None  # what someone changed in its instances outside mlctl


@dataclass(frozen=True)
class TrafficObserved(Observed):
    kind: ClassVar[Kind] = Kind.TRAFFIC
    traffic: dict[str, int] | None = None
    mirror_traffic: dict[str, int] | None = None


OBSERVED: dict[Kind, type[Observed]] = {
    cls.kind: cls
    for cls in (
        ModelObserved,
        EnvironmentObserved,
        ImageObserved,
        EndpointObserved,
        DeploymentObserved,
        TrafficObserved,
    )
}


def observed_of(kind: Kind, value) -> Observed | None:
    """The typed observed value of `kind` for `value` (a dict from state, a typed value, or None)."""
    if value is None or isinstance(value, Observed):
        return value
    return OBSERVED[kind].from_json(value)


def fields_of(kind: Kind) -> frozenset[str]:
    """The field names of `kind`'s observed value (what the drift rules may read)."""
    return frozenset(f.name for f in dataclasses.fields(OBSERVED[kind])) - {"extra"}
