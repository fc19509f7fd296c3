"""Sizing: a deployment's per-instance reservation (`resources.requests`) and limit (`resources.limits`) in
CPUs, bytes of memory and GPUs, read from Azure's Kubernetes `resources` block and kept in a deployment's
attributes as `resources: {requests: {cpu, memory, gpu}, limits: {...}}` (numbers, null when unset). Pure.

Kubernetes' rules: a request left out while its limit is set defaults to the limit; a request above its
limit is an error. The keys are Azure's: `cpu`, `memory`, `nvidia.com/gpu`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from mlctl import quantities
from mlctl.quantities import QuantityError

KEYS = {"cpu": "cpu", "memory": "memory", "nvidia.com/gpu": "gpu"}  # Azure's key -> Amounts field
_READERS = {"cpu": quantities.cpus, "memory": quantities.memory_bytes, "gpu": quantities.gpus}


@dataclass(frozen=True)
class Amounts:
    """CPUs (float), memory in bytes (int) and GPUs (int) of one instance; None where not given."""

    cpu: float | None = None
    memory: int | None = None
    gpu: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Pure: {"cpu": ..., "memory": ..., "gpu": ...} for a deployment's attributes."""
        return {"cpu": self.cpu, "memory": self.memory, "gpu": self.gpu}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> "Amounts":
        """Pure: the inverse of `to_json` (absent keys are None)."""
        value = value or {}
        cpu, memory, gpu = value.get("cpu"), value.get("memory"), value.get("gpu")
        return cls(
            None if cpu is None else float(cpu),
            None if memory is None else int(memory),
            None if gpu is None else int(gpu),
        )

    def is_empty(self) -> bool:
        """Pure: nothing given."""
        return self.cpu is None and self.memory is None and self.gpu is None

    def describe(self) -> str:
        """Pure: "500m CPU, 200Mi of memory, 1 GPU" (only what is given), for plans and messages."""
        parts = []
        if self.cpu is not None:
            parts.append(quantities.describe_cpus(self.cpu))
        if self.memory is not None:
            parts.append(f"{quantities.describe_bytes(self.memory)} of memory")
        if self.gpu is not None:
            parts.append(f"{self.gpu} GPU" + ("s" if self.gpu != 1 else ""))
        return ", ".join(parts) or "nothing"


@dataclass(frozen=True)
class Sizing:
    """One instance's reservation (`requests`) and limit (`limits`)."""

    requests: Amounts = field(default_factory=Amounts)
    limits: Amounts = field(default_factory=Amounts)

    def to_json(self) -> dict[str, Any]:
        """Pure: the `resources` attribute of a deployment."""
        return {"requests": self.requests.to_json(), "limits": self.limits.to_json()}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> "Sizing":
        """Pure: the inverse of `to_json`; an absent attribute is an empty sizing."""
        value = value or {}
        return cls(Amounts.from_json(value.get("requests")), Amounts.from_json(value.get("limits")))

    @classmethod
    def of(cls, attributes: Mapping[str, Any]) -> "Sizing":
        """Pure: the sizing of a deployment from its attributes (empty when it has no `resources`)."""
        return cls.from_json(attributes.get("resources"))

    def is_empty(self) -> bool:
        """Pure: neither requests nor limits given."""
        return self.requests.is_empty() and self.limits.is_empty()


@dataclass(frozen=True)
class Problem:
    """One error in a `resources` block: the path of the field under it (`("limits", "memory")`), what is wrong
    and what to do."""

    field: tuple[str, ...]
    message: str
    hint: str


def read_resources(raw: object) -> tuple[Sizing, list[Problem]]:
    """Pure: the sizing of Azure's `resources: {requests: {...}, limits: {...}}`, and every problem in it
    (an unknown key, a value that is not a quantity, a request above its limit); the sizing keeps what read."""
    problems: list[Problem] = []
    if raw is None:
        return Sizing(), problems
    if not isinstance(raw, Mapping):
        return Sizing(), [
            Problem((), "'resources' is not a mapping", "Write resources: {requests: {...}, limits: {...}}.")
        ]
    for key in raw:
        if key not in ("requests", "limits"):
            problems.append(
                Problem(
                    (str(key),), f"unknown field '{key}' in 'resources'", "Use 'requests' and 'limits' (Kubernetes)."
                )
            )
    requests = _read_amounts(raw.get("requests"), "requests", problems)
    limits = _read_amounts(raw.get("limits"), "limits", problems)
    defaulted = {}
    for name in ("cpu", "memory", "gpu"):
        asked, cap = getattr(requests, name), getattr(limits, name)
        if asked is None and cap is not None:
            defaulted[name] = cap  # Kubernetes: a request left out is its limit
        elif asked is not None and cap is not None and asked > cap:
            key = next(k for k, v in KEYS.items() if v == name)
            problems.append(
                Problem(
                    ("requests", key),
                    f"requests.{key} ({_show(name, asked)}) is above limits.{key} ({_show(name, cap)})",
                    "A request is at most its limit: lower the request or raise the limit.",
                )
            )
    return Sizing(Amounts(**{**requests.to_json(), **defaulted}), limits), problems


def _read_amounts(raw: object, where: str, problems: list[Problem]) -> Amounts:
    """Pure: the amounts of one `requests` or `limits` mapping; problems appended to `problems`."""
    if raw is None:
        return Amounts()
    if not isinstance(raw, Mapping):
        problems.append(
            Problem((where,), f"'resources.{where}' is not a mapping", "Write e.g. {cpu: 500m, memory: 1Gi}.")
        )
        return Amounts()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = KEYS.get(key)
        if name is None:
            problems.append(
                Problem(
                    (where, str(key)),
                    f"unknown resource '{key}' in 'resources.{where}'",
                    "mlctl reads cpu, memory and nvidia.com/gpu.",
                )
            )
            continue
        try:
            values[name] = _READERS[name](value)
        except QuantityError as e:
            problems.append(Problem((where, key), f"resources.{where}.{key}: {e}", "Write a Kubernetes quantity."))
            continue
        if where == "limits" and values[name] == 0 and name != "gpu":
            problems.append(
                Problem((where, key), f"resources.{where}.{key} is 0: nothing could run", "Give a limit above 0.")
            )
    return Amounts(**values)


def _show(name: str, value: float | int) -> str:
    """Pure: an amount for a message."""
    if name == "cpu":
        return quantities.describe_cpus(float(value))
    if name == "memory":
        return quantities.describe_bytes(int(value))
    return f"{value} GPU" + ("s" if value != 1 else "")
