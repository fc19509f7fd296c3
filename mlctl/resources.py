"""Resources: Kind, Address and Resource, the values the loader produces and the planner compares."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Any, Mapping


class Kind(str, enum.Enum):
    """Resource kinds, in wave order: creates walk this order forwards, deletes backwards."""

    MODEL = "model"
    ENVIRONMENT = "environment"
    IMAGE = "image"
    ENDPOINT = "endpoint"
    DEPLOYMENT = "deployment"
    TRAFFIC = "traffic"

    @property
    def wave(self) -> int:
        return _WAVES[self]


_WAVES = {k: i for i, k in enumerate(Kind)}


@dataclass(frozen=True, order=True)
class Address:
    """`model.NAME`, `environment.NAME`, `image.NAME`, `endpoint.NAME`,
    `deployment.ENDPOINT.NAME`, `traffic.ENDPOINT`."""

    kind: Kind
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind, self.name)))  # the dataclass's hash, computed once

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    def __reduce__(self):  # pickled and copied without the hash (another process hashes strings differently)
        return Address, (self.kind, self.name)

    def __eq__(self, other: object) -> bool:  # the dataclass's equality without building two tuples
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.name == other.name and self.kind == other.kind  # type: ignore[attr-defined]

    def __str__(self) -> str:
        return f"{self.kind.value}.{self.name}"

    @classmethod
    def parse(cls, text: str) -> "Address":
        kind, _, name = text.partition(".")
        try:
            k = Kind(kind)
        except ValueError:
            raise ValueError(
                f"'{text}' is not a resource address; expected one of "
                + ", ".join("deployment.ENDPOINT.NAME" if k is Kind.DEPLOYMENT else f"{k.value}.NAME" for k in Kind)
            ) from None
        parts = name.split(".") if name else []
        want = 2 if k is Kind.DEPLOYMENT else 1
        if len(parts) != want or not all(parts):
            shape = "deployment.ENDPOINT.NAME" if k is Kind.DEPLOYMENT else f"{k.value}.NAME"
            raise ValueError(f"'{text}' is not a resource address; expected {shape}")
        return cls(k, name)

    @property
    def endpoint(self) -> str | None:
        """The endpoint a deployment or traffic address belongs to (None for other kinds)."""
        if self.kind is Kind.DEPLOYMENT:
            return self.name.split(".", 1)[0]
        if self.kind in (Kind.ENDPOINT, Kind.TRAFFIC):
            return self.name
        return None


@functools.lru_cache(maxsize=1 << 16)
def parsed_address(text: str) -> Address:
    """Address.parse, once per text (addresses are immutable): a state of 10,000 resources names 32,000 of them."""
    return Address.parse(text)


@dataclass(frozen=True)
class Source:
    """Where a resource was declared: the file (as the user named it), the 1-based line, and the
    line of each field below it (`fields`: {"version": 3, "request_settings.request_timeout_ms": 9}),
    so an error found after loading can name the exact line."""

    file: str
    line: int | None = None
    fields: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)

    def line_of(self, name: str) -> int | None:
        """The line of field `name` (dotted), else of its closest ancestor present, else of the declaration."""
        while name:
            if name in self.fields:
                return self.fields[name]
            name = name.rpartition(".")[0]
        return self.line


@dataclass(frozen=True)
class Resource:
    """One desired resource, normalized.

    attributes: JSON-compatible dict, the normalized configuration (see docs/resources.md
                for the keys of each kind). Never contains secrets.
    digest:     sha256 hex of the resource's identity: attributes plus artifact content
                (for models and code, the Merkle digest of their files).
    depends_on: addresses this resource needs (graph edges point from them to it).
    files:      for a model / deployment (code): {relative path: sha256 of content}, so a
                plan can say which files changed. Keys for code are prefixed `code/`,
                model files `model/`.
    ignored:    dotted field paths accepted but not honoured by mlctl (cloud-only fields).
    source:     where it was declared, for diagnostics.
    """

    address: Address
    attributes: Mapping[str, Any]
    digest: str
    depends_on: tuple[Address, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    source: Source | None = None

    @property
    def kind(self) -> Kind:
        return self.address.kind
