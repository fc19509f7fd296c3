"""The contract between the engine and a runtime: what the author of the next runtime implements.

A runtime makes resources real (local processes, Docker containers, a Ray cluster). The engine
(`mlctl.reconciler`) decides everything; a runtime carries out orders, supervises what it was told
to run, and reports. Nothing in `mlctl.commands` or `mlctl.reconciler` imports a specific runtime:
they reach one through `mlctl.runtime.registry.load_runtime(name, settings)` (tests/test_layers.py
enforces it).

1. **Orders.** For every change the pure `plan()` names one `Order` (`Change.order`); apply calls the
   driver method of that name on the driver of the change's kind, exactly once, and never anything
   else. The runtime does not compare specs to decide again. The orders, with what each promises:

   ========  ======  ==================================================================================
   order     symbol  the driver ...
   ========  ======  ==================================================================================
   create    `+`     makes the resource (`prior` is the recorded state when it existed and is gone:
                     reuse its identity, e.g. an endpoint's port and keys)
   update    `~`     changes in-place fields of a running resource; for a deployment it also restarts
                     at once the instances that are down (drift repair)
   scale     `~`     (deployments) sets the instance count; the instances kept go on serving
   roll      `+/-`   starts the new beside the old, moves to it once ready, then drains the old
   recreate  `-/+`   deletes then creates, keeping identity (an endpoint's port and keys)
   delete    `-`     removes it (what other projects may share, e.g. cached images, stays)
   read      (none)  reports what really runs (refresh), `None` when it is gone
   ========  ======  ==================================================================================

   A change that moves a resource to another runtime (the project's runtime changed) is carried out
   by two runtimes: `roll` as the new one's `create` then the old one's `delete`, `recreate` as the
   old one's `delete` then the new one's `create`; the state records, per resource, the runtime that
   made it, and every later order for it goes to that runtime.

2. **Observed values** are typed per kind (`mlctl.observed`): a driver returns the kind's
   dataclass from every order but delete; apply stores it in state as JSON; the drift rules
   (`mlctl.reconciler.rules.DRIFT`) read its fields by name.

3. **Failures.** A driver that cannot carry out an order raises `DriverError(summary, detail,
   log_tail)`; apply records the resource as failed, keeps the state true and stops. What ran before
   the failed order must keep running (a failed roll leaves the old deployment serving).

4. **Preflight.** `Runtime.preflight(resources)` checks what only the machine can answer (an
   interpreter, an engine, a cluster) before anything is planned with refresh or applied; it
   raises MlctlError listing every problem, with file and line.

5. **Operate.** Everything a command needs at run time (an endpoint's address and keys, its live
   status for `show`/`list`, logs, the cache, leftovers for `destroy`) is a `Runtime` method, so
   every command works on every runtime. Runtimes that front their instances with mlctl's endpoint
   host (all of them today) inherit these from the kit's `mlctl.runtime.kit.operations.HostedRuntime`.

6. **Usage.** `Runtime.usage(endpoint, deployment)` reports, per instance, CPU seconds and peak
   memory, for profiling and limits.

A fake runtime that keeps everything in memory (tests/contract/fake_runtime.py) implements this contract, and
one contract suite (tests/contract/) runs on every runtime.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

if TYPE_CHECKING:
    from mlctl.projectpaths import Project
    from mlctl.resources import Address, Kind, Resource
    from mlctl.observed import Observed
    from mlctl.state.statefile import ResourceState, State


class Order(enum.StrEnum):
    """What apply tells a runtime to do with one resource; the value is the driver method's name."""

    CREATE = "create"
    UPDATE = "update"
    SCALE = "scale"
    ROLL = "roll"
    RECREATE = "recreate"
    DELETE = "delete"
    READ = "read"


class DriverError(Exception):
    """A runtime operation failed: `summary` (one line), `detail` (what to do) and `log_tail`
    (the relevant log lines, e.g. the scoring script's traceback)."""

    def __init__(self, summary: str, detail: str = "", log_tail: str = ""):
        super().__init__(summary)
        self.summary, self.detail, self.log_tail = summary, detail, log_tail


@dataclass
class RuntimeContext:
    """What a driver may know about the run: the project, the runtime's settings, progress reporting.

    progress(address, message) is how drivers tell the user what they do (commands print it). A runtime
    that keeps a per-run view of what it reads (each endpoint host read once per refresh) returns a typed
    subclass from `Runtime.context` (the kit's `HostedContext`).
    """

    project: Project
    settings: Mapping[str, Any] = field(default_factory=dict)
    progress: Callable[[str, str], None] = lambda address, message: None
    timeout: float = 600.0

    @property
    def data_dir(self) -> Path:
        return self.project.data_dir

    def read_ahead(self, addresses: Iterable[Address]) -> None:
        """A refresh is about to read these recorded resources one by one: a context may ask for what they
        share all at once (the kit's asks every endpoint host in parallel). Nothing by default."""


C = TypeVar("C", bound="RuntimeContext", contravariant=True)  # the context a runtime's drivers take


class Driver(Protocol[C]):
    """One kind's orders, with the signatures `mlctl.reconciler.apply` calls (the table above);
    `prior` is the recorded ResourceState (None for a create of something never recorded).

    A kind that cannot take an order still has the method, typed `-> NoReturn` and raising DriverError
    (`Unscalable.scale` for every kind but deployments): a type checker sees that it never returns, and
    apply finds every order as a plain attribute (never by name). `C` is the context the runtime's `context()`
    returns (the kit's drivers take its `HostedContext`), so a composition is checked against this protocol."""

    def create(self, resource: Resource, prior: ResourceState | None, ctx: C) -> Observed: ...

    def update(self, resource: Resource, prior: ResourceState, ctx: C) -> Observed: ...

    def scale(self, resource: Resource, prior: ResourceState, ctx: C) -> Observed: ...

    def roll(self, resource: Resource, prior: ResourceState, ctx: C) -> Observed: ...

    def recreate(self, resource: Resource, prior: ResourceState, ctx: C) -> Observed: ...

    def delete(self, address: Address, prior: ResourceState, ctx: C, keep_identity: bool = False) -> None: ...

    def read(self, address: Address, prior: ResourceState, ctx: C) -> Observed | None: ...


class Unscalable:
    """The `scale` of a kind that has no instance count: the plan never orders it; a type checker sees it
    never returns."""

    def scale(self, resource: Resource, prior: ResourceState, ctx: RuntimeContext) -> NoReturn:
        raise DriverError(f"a {resource.kind.value} cannot be scaled ({resource.address})")


@dataclass(frozen=True)
class InstanceUsage:
    """What one instance used: CPU seconds (user + system) and peak resident memory in bytes."""

    index: int
    cpu_seconds: float
    peak_memory_bytes: int


class Runtime:
    """A runtime: its drivers (one per kind), its preflight, and the operations commands need.

    Subclasses set `name` and `drivers`, and implement what they support; an operation a runtime
    does not have raises MlctlError saying so (never NotImplementedError at a user)."""

    name: str = ""
    drivers: Mapping[Kind, Driver[Any]] = {}
    without_environment: str = "mlctl's own interpreter"  # what a deployment without one runs on (`show`)

    def __init__(self, settings: Mapping[str, Any] | None = None):
        self.settings = dict(settings or {})

    # ---- the engine's side -------------------------------------------------------------------
    def driver(self, kind: Kind) -> Driver[Any]:
        return self.drivers[kind]

    def context(self, project: Project, **kwargs) -> RuntimeContext:
        return RuntimeContext(project, settings=self.settings, **kwargs)

    def preflight(self, resources: Iterable[Resource]) -> None:
        """MlctlError listing every desired resource this machine cannot serve; the default checks nothing."""

    def plan_notes(self, resources: Iterable[Resource]) -> list:
        """Notes (`Diagnostic`s of severity note) that `plan` shows about what this machine will use for
        the desired resources (the docker runtime: which base image each image starts from, and why).
        Best effort and without effects: never raises; the default has none."""
        return []

    # ---- the commands' side ------------------------------------------------------------------
    def endpoint_url(self, project: Project, endpoint: str, attributes: Mapping | None = None) -> str | None:
        """The endpoint's base URL as clients use it (`http://127.0.0.1:PORT`; with the project's `listen:`,
        e.g. `https://NAME:PORT`), None when it is not running. `attributes`: the endpoint's, as applied."""
        raise self._unsupported("reach an endpoint")

    def endpoint_address(self, project: Project, endpoint: str, attributes: Mapping) -> str:
        """Where this machine connects to reach the endpoint (the URL's host name is what TLS verifies): the
        host's listen address, loopback for 0.0.0.0 and :: (mlctl.endpointurls.reach_address). Runtimes whose
        hosts run elsewhere say where."""
        from mlctl.endpointurls import reach_address

        return reach_address(attributes)

    def authorization(self, project: Project, endpoint: str, auth_mode: str) -> str:
        """The Authorization header value for a request to the endpoint (never printed)."""
        raise self._unsupported("authorize a request")

    def keys(self, project: Project, endpoint: str) -> dict:
        """{"primary", "secondary"} of an endpoint (only `mlctl keys` prints them)."""
        raise self._unsupported("read keys")

    def issue_token(self, project: Project, endpoint: str) -> tuple[str, float]:
        """A fresh aml_token and its expiry (epoch seconds)."""
        raise self._unsupported("issue tokens")

    def regenerate_key(self, project: Project, endpoint: str, which: str) -> None:
        """Replace the primary or secondary key; the running endpoint takes it at once."""
        raise self._unsupported("regenerate keys")

    def endpoint_status(self, project: Project, endpoint: str) -> dict | None:
        """The live endpoint as `show` reports it ({"pid", "port", "traffic", "mirror_traffic",
        "deployments": {NAME: {"state", "ready_instances", "instances": [...]}}}), None when not running."""
        raise self._unsupported("report endpoint status")

    def logs(
        self,
        project: Project,
        endpoint: str,
        deployment: str | None,
        *,
        lines: int,
        instance: int | None = None,
        follow: bool = False,
    ) -> Iterator[str]:
        """Instance log lines (the endpoint host's own log without a deployment)."""
        raise self._unsupported("show logs")

    def build_logs(self, project: Project, state: State, endpoint: str, deployment: str, lines: int) -> list[str]:
        """What preparing the deployment wrote (model and code registration, the image build)."""
        raise self._unsupported("show build logs")

    def usage(self, project: Project, endpoint: str, deployment: str) -> list[InstanceUsage]:
        """CPU seconds and peak memory of each instance of a running deployment."""
        raise self._unsupported("report usage")

    def cache_entries(self, project: Project, state: State) -> list:
        """What this runtime keeps beyond a deployment's life (images, models, snapshots)."""
        return []

    def cache_location(self) -> str:
        return ""

    def prune(self, entries: list, older_than_s: float, now: float) -> list:
        """The entries of `entries` that nothing uses and may be removed."""
        return []

    def remove(self, entry) -> bool:
        return False

    def leftovers(self, project: Project, recorded: Iterable[str]) -> list[tuple[str, Callable[[], None]]]:
        """[(what, stop)] for anything of this project running that the state does not record
        (its endpoints in `recorded`), so `destroy` leaves nothing behind."""
        return []

    def left_behind(self, project: Project) -> list[str]:
        """Notes on what this runtime finds running for copies of this project's records that belong to
        another location (a moved or copied project's endpoint hosts): reported by `state adopt`, never
        touched."""
        return []

    def _unsupported(self, what: str):
        from mlctl.errors import MlctlError

        return MlctlError(f"the {self.name} runtime cannot {what}")
