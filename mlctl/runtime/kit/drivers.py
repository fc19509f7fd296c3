"""The kit's host drivers: endpoints, deployments and traffic of every runtime whose endpoints are mlctl's
endpoint host (the last two through the host's admin socket), and `Guarded`, which makes host and
file-system failures DriverErrors.

What differs between runtimes is handed in, never subclassed:
- `DeploymentDriver(spec_of, launcher, platform)`: how a deployment's serving spec is made
  (`spec_of(ctx, attributes, launcher)`), which launcher runs its instances (a name of
  `mlctl.runtime.records`), and what happens before and after the host's order (`Platform`: e.g. deploy
  or retire the platform's replicas; the default does nothing but say what the host does);
- `EndpointDriver(after_delete)` (`mlctl.runtime.kit.endpoints`): what else goes with a stopped host (e.g.
  containers it left behind).

Drivers read the hosts through `ctx.hosts` (`hostview.HostedContext`). Each method is one order of
`mlctl.runtime.contract`; drivers do what apply tells them, report what they observe and never decide again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from mlctl import scalesettings
from mlctl.resources import Address, Kind, Resource
from mlctl.runtime.contract import Driver, DriverError, Order, Unscalable
from mlctl.runtime.failures import failure_line
from mlctl.runtime.host import client as hostclient
from mlctl.runtime.kit.hostview import HostedContext
from mlctl.observed import DeploymentObserved, Observed, TrafficObserved
from mlctl.state.statefile import ResourceState

H = TypeVar("H", bound=HostedContext)  # the context a runtime's `context()` returns (docker's adds its engine)
SpecMaker = Callable[[H, dict, str], dict]  # (ctx, deployment attributes, launcher) -> serving spec


def deployment_observed(d: dict | None) -> DeploymentObserved | None:
    """Pure: the observed value of a deployment from the host's report of it (None: the host does not run it)."""
    if d is None:
        return None
    return DeploymentObserved(
        state=d.get("state"),
        instance_count=d.get("instance_count"),
        ready_instances=d.get("ready_instances", 0),
        served_model_digest=d.get("model_digest"),
        served_code_digest=d.get("code_digest"),
        serving_digest=d.get("digest"),
        instances=d.get("instances", []),
    )


class Platform:
    """What happens around the host's order of a deployment. The default (processes, containers: the host's
    launcher runs the instances) only says what the host is about to do; a platform that runs the
    instances itself (Ray Serve) deploys them before and retires the replaced ones after."""

    def before(self, order: Order, resource: Resource, spec: Callable[[], dict], ctx: HostedContext) -> dict | None:
        """Before the host's order: the spec the host gets for a create or a roll (`spec()` makes the
        deployment's serving spec), None for the orders that take none (scale, update)."""
        count = resource.attributes["instance_count"]
        made = spec() if order in (Order.CREATE, Order.ROLL) else None  # the spec maker speaks first (which image)
        say = {
            Order.CREATE: f"starting {count} instance(s) and waiting until ready",
            Order.ROLL: "starting the new instances beside the old and waiting until ready",
            Order.SCALE: f"autoscaling within {scalesettings.describe_range(resource.attributes)} instance(s)"
            if scalesettings.is_autoscaled(resource.attributes)
            else f"scaling to {count} instance(s)",
        }.get(order)
        if say:
            ctx.progress(str(resource.address), say)
        return made

    def failed(self, attributes: Mapping[str, Any]) -> str:
        """What to do when the deployment's new instances failed (the old ones keep serving)."""
        a = attributes
        return f"The old instances (if any) keep serving; see `mlctl logs {a['endpoint']} --deployment {a['name']}`."

    def refused(self, order: Order, resource: Resource, spec: dict | None, prior, was_running: bool, ctx) -> None:
        """The host refused the order (the old instances keep serving): undo what `before` made."""

    def after(self, order: Order, resource: Resource, spec: dict | None, host: dict | None, ctx) -> dict | None:
        """After the host carried the order out: retire what it replaced; the host's report of the deployment."""
        return host

    def retire(self, address: Address, attributes: Mapping[str, Any], ctx: HostedContext) -> None:
        """After the host drained and stopped a deleted deployment (or had none): what else goes."""

    def observe(self, attributes: Mapping[str, Any], host: dict | None, prior, ctx) -> DeploymentObserved | None:
        """What runs of the deployment, from the host's report of it (None: nothing runs)."""
        return deployment_observed(host)


def _ranged(attributes: Mapping[str, Any], prior) -> bool:
    """Pure: is the deployment autoscaled now, or was it (then its host is told the new settings)?"""
    return scalesettings.is_autoscaled(attributes) or bool(prior and scalesettings.is_autoscaled(prior.attributes))


class DeploymentDriver(Generic[H]):
    """A deployment's instances in its endpoint host: created, rolled health-gated, scaled, revived.
    `spec_of(ctx, attributes, launcher)` makes the serving spec the host gets; `launcher` names what runs the
    instances; `platform` acts around the host's orders."""

    def __init__(self, spec_of: SpecMaker[H], launcher: str, platform: Platform | None = None):
        self.spec_of, self.launcher, self.platform = spec_of, launcher, platform or Platform()

    def _spec(self, resource, ctx: H) -> Callable[[], dict]:
        return lambda: self.spec_of(ctx, dict(resource.attributes), self.launcher)

    def _host_order(self, resource, ctx: H, verb: str, call):
        a = dict(resource.attributes)
        try:
            return call(ctx.hosts.client(a["endpoint"]))
        except hostclient.DeploymentFailed as e:
            raise DriverError(failure_line(e.message, e.log_tail), self.platform.failed(a), e.log_tail) from None
        except hostclient.HostError as e:
            raise DriverError(f"{resource.address}: the endpoint host refused to {verb} it: {e}") from None

    def _carry_out(self, order: Order, resource, prior, ctx: H, verb: str, call) -> Observed | None:
        a = resource.attributes
        was_running = ctx.hosts.deployment(a["endpoint"], a["name"]) is not None
        spec = self.platform.before(order, resource, self._spec(resource, ctx), ctx)
        try:
            host = self._host_order(resource, ctx, verb, lambda c: call(c, spec, was_running))
        except DriverError:
            self.platform.refused(order, resource, spec, prior, was_running, ctx)
            raise
        host = self.platform.after(order, resource, spec, host, ctx)
        ctx.hosts.forget_status(a["endpoint"])
        return self.platform.observe(a, host, prior, ctx)

    def create(self, resource, prior, ctx: H):
        """Start the instances and wait until they are ready. One the host already runs without a
        record of it here (the state was lost, or the endpoint was recreated with its instances kept) is
        replaced health-gated instead."""

        def call(c, spec, was_running):
            if was_running:
                return c.roll_deployment(spec, timeout=ctx.timeout)
            return c.create_deployment(spec, timeout=ctx.timeout)

        return self._carry_out(Order.CREATE, resource, prior, ctx, "start", call)

    def update(self, resource, prior, ctx: H):
        """In-place fields are metadata and the autoscaling range (the host takes the new range and brings
        its count into it, restarting nothing); instances that are down start again at once."""
        a = resource.attributes
        name = a["name"]

        def call(c, *_):
            if _ranged(a, prior):
                c.set_scaling(name, scalesettings.settings_of(a), a["instance_count"], timeout=ctx.timeout)
            return c.revive_deployment(name, timeout=ctx.timeout)

        return self._carry_out(Order.UPDATE, resource, prior, ctx, "update", call)

    def scale(self, resource, prior, ctx: H):
        """To the fixed count; under autoscaling (or leaving it), the range goes to the host, which brings
        its count into it."""
        a = resource.attributes
        name, count = a["name"], a["instance_count"]

        def call(c, *_):
            if _ranged(a, prior):
                return c.set_scaling(name, scalesettings.settings_of(a), count, timeout=ctx.timeout)
            return c.scale_deployment(name, count, timeout=ctx.timeout)

        return self._carry_out(Order.SCALE, resource, prior, ctx, "scale", call)

    def roll(self, resource, prior, ctx: H):
        """New instances beside the old, traffic moves once they are ready, then the old drain."""
        return self._carry_out(
            Order.ROLL, resource, prior, ctx, "roll", lambda c, spec, _: c.roll_deployment(spec, timeout=ctx.timeout)
        )

    def recreate(self, resource, prior, ctx: H):
        """Its endpoint was recreated: a new host has no instances, so they start; a host that still
        runs them replaces them health-gated (there is never a moment without the deployment)."""
        return self.create(resource, prior, ctx)

    def delete(self, address, prior, ctx: H, keep_identity=False):
        """Drain and stop the deployment in its host (nothing to do there when its host is gone), then what
        the platform retires."""
        a = prior.attributes
        endpoint, name = a["endpoint"], a["name"]
        if ctx.hosts.running(endpoint):
            status = ctx.hosts.client(endpoint).status()
            if name in (status.get("deployments") or {}):
                ctx.progress(str(address), "draining and stopping its instances")
                try:
                    ctx.hosts.client(endpoint).remove_deployment(name)
                except hostclient.HostError as e:
                    raise DriverError(f"{address} could not be deleted: {e}") from None
        self.platform.retire(address, a, ctx)

    def read(self, address, prior, ctx: H):
        a = prior.attributes
        return self.platform.observe(a, ctx.hosts.deployment(a["endpoint"], a["name"]), prior, ctx)


class TrafficDriver(Unscalable):
    """Sets an endpoint's traffic weights and mirror in its host (atomically)."""

    def create(self, resource, prior, ctx: HostedContext):
        a = dict(resource.attributes)
        try:
            ctx.hosts.client(a["endpoint"]).set_traffic(
                dict(a.get("traffic") or {}), dict(a.get("mirror_traffic") or {})
            )
        except hostclient.HostError as e:
            raise DriverError(f"{resource.address}: the endpoint host refused the traffic: {e}") from None
        return TrafficObserved(traffic=dict(a.get("traffic") or {}), mirror_traffic=dict(a.get("mirror_traffic") or {}))

    def update(self, resource, prior, ctx: HostedContext):
        return self.create(resource, prior, ctx)

    roll = recreate = update

    def delete(self, address, prior, ctx: HostedContext, keep_identity=False):
        if ctx.hosts.running(prior.attributes["endpoint"]):
            ctx.hosts.client(prior.attributes["endpoint"]).set_traffic({}, {})

    def read(self, address, prior, ctx: HostedContext):
        status = ctx.hosts.status(prior.attributes["endpoint"])
        if status is None:
            return None
        return TrafficObserved(traffic=status.get("traffic", {}), mirror_traffic=status.get("mirror_traffic", {}))


class Guarded:
    """A driver whose host and file-system failures surface as DriverError (apply records them); a runtime
    adds its platform's failures by overriding `translate`."""

    def __init__(self, driver: Driver[Any]):
        self.driver = driver

    def translate(self, e: Exception) -> DriverError | None:
        """The DriverError that `e` is, None when it is not a failure this guard knows."""
        if isinstance(e, hostclient.HostError):
            return DriverError(f"the endpoint host refused: {e.message}", "", e.log_tail)
        if isinstance(e, OSError):
            return DriverError(f"{e.strerror or e} ({e.filename or 'no file'})")
        return None

    def _guard(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except DriverError:
            raise
        except Exception as e:
            error = self.translate(e)
            if error is None:
                raise
            raise error from None

    def create(self, resource: Resource, prior: ResourceState | None, ctx) -> Observed:
        return self._guard(lambda: self.driver.create(resource, prior, ctx))

    def update(self, resource: Resource, prior: ResourceState, ctx) -> Observed:
        return self._guard(lambda: self.driver.update(resource, prior, ctx))

    def scale(self, resource: Resource, prior: ResourceState, ctx) -> Observed:
        return self._guard(lambda: self.driver.scale(resource, prior, ctx))

    def roll(self, resource: Resource, prior: ResourceState, ctx) -> Observed:
        return self._guard(lambda: self.driver.roll(resource, prior, ctx))

    def recreate(self, resource: Resource, prior: ResourceState, ctx) -> Observed:
        return self._guard(lambda: self.driver.recreate(resource, prior, ctx))

    def delete(self, address: Address, prior: ResourceState, ctx, keep_identity: bool = False) -> None:
        self._guard(lambda: self.driver.delete(address, prior, ctx, keep_identity=keep_identity))

    def read(self, address: Address, prior: ResourceState, ctx) -> Observed | None:
        return self._guard(lambda: self.driver.read(address, prior, ctx))


def guarded(drivers: Mapping[Kind, Driver[Any]], guard: type[Guarded] = Guarded) -> dict[Kind, Driver[Any]]:
    """{Kind: driver} with every driver behind `guard`: a runtime's drivers as the engine gets them."""
    return {kind: guard(d) for kind, d in drivers.items()}
