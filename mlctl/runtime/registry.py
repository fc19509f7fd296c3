"""The runtimes by name: the one place that maps a runtime's name to its package.

The engine and the commands load a runtime here and never import one directly. A new runtime
plugs in by adding a line to RUNTIMES (its module defines `runtime(settings) -> Runtime`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from mlctl.errors import MlctlError
from mlctl.runtime.contract import Runtime

# name -> module defining runtime(settings); names known but not in this version map to None
RUNTIMES: dict[str, str | None] = {
    "local": "mlctl.runtime.local.runtime",
    "docker": "mlctl.runtime.docker.runtime",
    "ray": "mlctl.runtime.ray.runtime",
    "kubernetes": None,  # planned (DESIGN.md): known, so a project naming it is told it is not in this version
}
DEFAULT = "local"

_extra: dict[str, Any] = {}  # runtimes registered at run time (tests register their fake one)


def known() -> tuple[str, ...]:
    """Names of every runtime mlctl knows, whether or not this version has it."""
    return tuple(sorted(set(RUNTIMES) | set(_extra)))


def available() -> tuple[str, ...]:
    """Names of the runtimes this mlctl can load."""
    return tuple(sorted({n for n, m in RUNTIMES.items() if m} | set(_extra)))


def register(name: str, factory) -> None:
    """Make `factory(settings) -> Runtime` loadable as `name` for this process (tests)."""
    _extra[name] = factory


def unregister(name: str) -> None:
    _extra.pop(name, None)


def load_runtime(name: str = DEFAULT, settings: Mapping[str, Any] | None = None) -> Runtime:
    """The runtime called `name` with its settings block; MlctlError for a name this mlctl does not have."""
    if name in _extra:
        return _extra[name](settings or {})
    module = RUNTIMES.get(name)
    if module is None:
        if name in RUNTIMES:
            raise MlctlError(
                f"the {name} runtime is not in this version of mlctl",
                detail=f"Available runtimes: {', '.join(available())}. Set `runtime:` in mlctl.yaml "
                "(or --runtime / MLCTL_RUNTIME) to one of them.",
            )
        raise MlctlError(f"unknown runtime {name!r}", detail=f"Available runtimes: {', '.join(available())}.")
    return importlib.import_module(module).runtime(settings or {})


class Runtimes:
    """The runtimes of one run, loaded once each: the project's, and those recorded in state
    (`load(name)` loads one of those with its settings; default: none)."""

    def __init__(self, main: Runtime, load=load_runtime):
        self.main, self._load = main, load
        self._loaded = {main.name: main}

    def get(self, name: str | None) -> Runtime:
        """The runtime that made a recorded resource (`name` from state; None means the main one)."""
        if not name:
            return self.main
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]
