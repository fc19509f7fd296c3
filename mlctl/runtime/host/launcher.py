"""The launcher contract: how the endpoint host starts, watches and stops a deployment's instances.

The host (gateway + supervisor) never knows what an instance is. It knows an instance by its
`InstanceKey` (generation, index) and by the address the launcher gave for it, which it sends
requests and probes (HTTP `GET /`) to. Everything else goes through the deployment's launcher:

    class Launcher:                                 # one per deployment, built as Launcher(place, deployment)
        name: str                                   # its name in the registry below (a spec's `launcher`)
        restarts_itself: bool                       # the platform restarts instances (Ray Serve): the host
                                                    # then only probes and reports, never restarts or revives
        async start(spec, keys) -> [address]        # launch these instances of `spec` (ServingSpec), not
                                                    # waiting for readiness: the host polls the addresses.
                                                    # OSError when it cannot launch (nothing left running).
        async restart(key) -> address | None        # the same instance again at once (killed first if still
                                                    # running); None when it was stopped for good meanwhile,
                                                    # or when someone stopped it outside mlctl (a container
                                                    # stopped or removed by hand): supervision then leaves it
                                                    # down, which is drift, until a revive starts a fresh one
        async stop(keys, grace=5.0)                 # stop for good (gracefully, forcefully after `grace` s);
                                                    # the host drained them first; a key is never reused
        health(key) -> str | None                   # None while it runs, else why not ("exited with code 1")
        async gone(key) -> str                      # returns once it stopped running: why (as health says)
        logs(key, lines=60) -> str                  # the last lines it wrote (shown when it fails)
        on_ready(key)                               # it answered its readiness probe (a process copies
                                                    # what init() printed to its log file now)
        usage(key) -> Usage | None                  # CPU seconds and peak memory so far, None if unknown
        describe(key) -> dict                       # its own status fields (a process: pid, socket,
                                                    # workers = the scoring server's WORKER_COUNT)
        async close()                               # the deployment is gone: release files and the like

An address is "unix:/path/to.sock", "tcp:HOST:PORT" or "tcp:HOST:PORT/PREFIX" (see upstream.Pool). The host runs the
supervision: readiness and liveness probes, restarts with backoff, health-gated rolls (a new
generation of keys beside the old, the old drained then stopped), scaling (new keys started,
highest ones drained then stopped) and revival of instances that are down (a fresh generation).
How many scoring workers an instance runs is the scoring server's business (WORKER_COUNT: one parent
process, the one pid a launcher signals, forks them): launchers only report the count in describe().

A new launcher is a module with a class `Launcher` following this contract, named by its runtime's record
(`mlctl.runtimerecords`: `launcher`, `launcher_module`); LAUNCHERS is derived from the records. This module
imports no launcher and names no runtime: the records name modules, loaded on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from mlctl import runtimerecords

DEFAULT_LAUNCHER = runtimerecords.BUILT_IN[0].launcher  # what a spec that names none means (the local runtime's)
LAUNCHERS = runtimerecords.launchers()  # a spec's `launcher` -> module with class `Launcher`, from the records


class InstanceKey(NamedTuple):
    """An instance as the host names it: its deployment's generation (one per roll or revival) and index."""

    generation: int
    index: int


@dataclass(frozen=True)
class Usage:
    """What an instance used so far: CPU seconds (user + system) and its peak memory in bytes."""

    cpu_seconds: float
    peak_memory_bytes: int


@dataclass
class Place:
    """Where the host of one endpoint keeps instance files: its data folder and socket folder."""

    data_dir: Path
    endpoint: str
    socket_dir: Path


class InstanceFailed(Exception):
    """An instance exited or did not become ready; carries the tail of its output."""

    def __init__(self, message: str, log_tail: str):
        super().__init__(message)
        self.log_tail = log_tail


class UnknownLauncher(ValueError):
    """A spec names a launcher this host does not have (the message names it and those it has)."""


class Launcher(Protocol):
    name: str
    restarts_itself: bool

    async def start(self, spec, keys: list[InstanceKey]) -> list[str]: ...
    async def restart(self, key: InstanceKey) -> str | None: ...
    async def stop(self, keys: list[InstanceKey], grace: float = 5.0) -> None: ...
    def health(self, key: InstanceKey) -> str | None: ...
    async def gone(self, key: InstanceKey) -> str: ...
    def logs(self, key: InstanceKey, lines: int = 60) -> str: ...
    def on_ready(self, key: InstanceKey) -> None: ...
    def usage(self, key: InstanceKey) -> Usage | None: ...
    def describe(self, key: InstanceKey) -> dict: ...
    async def close(self) -> None: ...


def check_launcher(name) -> None:
    """UnknownLauncher unless `name` is in the registry."""
    launchers = _launchers(name)
    if name not in launchers:
        raise UnknownLauncher(f"unknown launcher {name!r}: this endpoint host has {', '.join(sorted(launchers))}")


def make_launcher(name: str, place: Place, deployment: str) -> Launcher:
    """The named launcher for one deployment (its module imported on first use)."""
    check_launcher(name)
    return importlib.import_module(_launchers(name)[name]).Launcher(place, deployment)


def _launchers(name: str | None = None) -> dict[str, str]:
    """LAUNCHERS, and those of runtimes registered since this module was imported (and of the installed
    runtimes, read only when `name` is not among those)."""
    known = {**runtimerecords.launchers(), **LAUNCHERS}
    if name in known:
        return known
    runtimerecords.records(scan=True)
    return {**runtimerecords.launchers(), **LAUNCHERS}
