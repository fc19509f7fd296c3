"""The docker runtime's per-run context: the kit's (`HostedContext`: the endpoint hosts) and what the run
reads of the engine and the project once: the engine's client, its machine, the project's lineage."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from mlctl.runtime.kit.hostview import HostedContext


@dataclass
class DockerContext(HostedContext):
    @functools.cached_property
    def client(self) -> Any:
        """The engine's client, connected once per run."""
        from mlctl.runtime.docker import engine

        return engine.connect(self.settings)

    @functools.cached_property
    def machine(self) -> tuple[int, int]:
        """(CPUs, memory bytes) of the engine's machine."""
        info = self.client.info()
        return int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0)

    @functools.cached_property
    def lineage(self) -> str:
        """The project's state lineage (its containers' `mlctl.project` label)."""
        from mlctl.state.backends import state_backend
        from mlctl.state.statefile import read_state

        return read_state(state_backend(self.project)).lineage
