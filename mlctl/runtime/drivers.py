"""The driver protocol: how apply and refresh talk to a runtime, one driver per resource kind.

Apply is the only caller of `create`/`update`/`delete` and the only place that decides; drivers
do what they are told and report what they observe (a JSON-compatible dict, stored in state).
A driver that cannot do its job raises DriverError; apply records the failure and stops.

What apply calls for each plan action:
  `+` create(resource)                   `~` update(resource, prior)
  `+/-` create(resource) with ctx.prior holding the old state: the driver rolls in place
        (a deployment's new instances start beside the old ones, which drain once it is ready)
  `-/+` delete(address, prior) with ctx.replacing, then create(resource)
  `-` delete(address, prior)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mlctl.project import Project
    from mlctl.resources import Address, Kind, Resource
    from mlctl.state.statefile import ResourceState


class DriverError(Exception):
    """A runtime operation failed: `summary` (one line), `detail` (what to do) and `log_tail`
    (the relevant log lines, e.g. the scoring script's traceback)."""

    def __init__(self, summary: str, detail: str = "", log_tail: str = ""):
        super().__init__(summary)
        self.summary, self.detail, self.log_tail = summary, detail, log_tail


@dataclass
class RuntimeContext:
    """What a driver may know about the run: the project, the prior state, where to report progress.

    progress(address, message) is how drivers tell the user what they do (commands print it).
    prior: state resources as they were when the operation began ({address: ResourceState}).
    replacing: True while apply deletes a resource it recreates at once (`-/+`): keep its identity
    (an endpoint keeps its keys and port).
    memo: per-run cache (refresh reads each endpoint host once).
    """

    project: Project
    prior: Mapping[str, ResourceState] = field(default_factory=dict)
    progress: Callable[[str, str], None] = lambda address, message: None
    timeout: float = 600.0
    replacing: bool = False
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.project.data_dir

    def prior_of(self, address) -> ResourceState | None:
        return self.prior.get(str(address))


class Driver(Protocol):
    def create(self, resource: Resource, ctx: RuntimeContext) -> dict: ...

    def update(self, resource: Resource, prior: ResourceState, ctx: RuntimeContext) -> dict: ...

    def delete(self, address: Address, prior: ResourceState, ctx: RuntimeContext) -> None: ...

    def read(self, address: Address, prior: ResourceState, ctx: RuntimeContext) -> dict | None: ...


Runtime = Mapping["Kind", Driver]


def load_runtime(name: str = "local") -> Runtime:
    """The drivers of runtime `name` ({Kind: Driver}); only "local" exists so far."""
    if name != "local":
        from mlctl.errors import MlctlError

        raise MlctlError(f"unknown runtime {name!r}", detail="The only runtime so far is 'local'.")
    from mlctl.runtime.local.drivers import local_runtime

    return local_runtime()
