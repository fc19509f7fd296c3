"""The runtimes by name: the engine and the commands load a runtime here and never import one directly.

Which runtimes there are, and the module of each, is their records' (`mlctl.runtimerecords`: built in,
installed through the `mlctl.runtimes` entry points, or registered in-process); a module named there
defines `runtime(settings) -> Runtime`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from mlctl import runtimerecords
from mlctl.errors import MlctlError
from mlctl.runtime.contract import Runtime
from mlctl.runtimerecords import DEFAULT, RuntimeRecord, available, known


def __getattr__(name: str):
    if name == "RUNTIMES":  # name -> module defining runtime(settings); None: known, not in this version
        return {n: r.module for n, r in runtimerecords.records(scan=True).items() if r.factory is None}
    raise AttributeError(name)


def register(name: str, factory) -> None:
    """Make `factory(settings) -> Runtime` loadable as `name` for this process (tests)."""
    runtimerecords.register(RuntimeRecord(name, None, factory=factory))


def unregister(name: str) -> None:
    runtimerecords.unregister(name)


def load_runtime(name: str = DEFAULT, settings: Mapping[str, Any] | None = None) -> Runtime:
    """The runtime called `name` with its settings block; MlctlError for a name this mlctl does not have."""
    record = runtimerecords.record(name)
    if record is not None and record.factory is not None:
        return record.factory(settings or {})
    if record is None or record.module is None:
        if record is not None:
            raise MlctlError(
                f"the {name} runtime is not in this version of mlctl",
                detail=f"Available runtimes: {', '.join(available())}. Set `runtime:` in mlctl.yaml "
                "(or --runtime / MLCTL_RUNTIME) to one of them.",
            )
        raise MlctlError(f"unknown runtime {name!r}", detail=f"Available runtimes: {', '.join(available())}.")
    return importlib.import_module(record.module).runtime(settings or {})


__all__ = ["DEFAULT", "Runtimes", "available", "known", "load_runtime", "register", "unregister"]


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
