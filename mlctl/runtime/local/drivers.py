"""The local runtime's drivers, one per kind: model store, recorded environments, virtualenv images,
endpoint hosts, deployments and traffic (the last three through the endpoint host's admin socket).

Each method is one order of `mlctl.runtime.contract`; drivers do what apply tells them, report what
they observe (`mlctl.runtime.observed`) and never decide again.
"""

from __future__ import annotations

from mlctl.requirements import requirements
from mlctl.resources import Kind
from mlctl.runtime.contract import DriverError, RuntimeContext
from mlctl.runtime.failures import failure_line
from mlctl.runtime.host import client as hostclient
from mlctl.runtime.host import secrets
from mlctl.runtime.local import envs, store
from mlctl.runtime.local.serving import deployment_spec
from mlctl.runtime.observed import (
    DeploymentObserved,
    EndpointObserved,
    EnvironmentObserved,
    ImageObserved,
    ModelObserved,
    TrafficObserved,
)


def _attrs(resource) -> dict:
    return dict(resource.attributes)


def _host(ctx: RuntimeContext, endpoint: str):
    """The running host of `endpoint` (HostInfo) or None, read once per run."""
    key = f"host:{endpoint}"
    if key not in ctx.memo:
        ctx.memo[key] = hostclient.find_host(ctx.data_dir, endpoint)
    return ctx.memo[key]


def _status(ctx: RuntimeContext, endpoint: str) -> dict | None:
    """The host's status report (cached for the run), None when the host is not running."""
    key = f"status:{endpoint}"
    if key not in ctx.memo:
        info = _host(ctx, endpoint)
        try:
            ctx.memo[key] = hostclient.HostClient(info).status() if info else None
        except hostclient.HostError:
            ctx.memo[key] = None
    return ctx.memo[key]


def _forget(ctx: RuntimeContext, endpoint: str) -> None:
    ctx.memo.pop(f"status:{endpoint}", None)
    ctx.memo.pop(f"host:{endpoint}", None)


def _client(ctx: RuntimeContext, endpoint: str) -> hostclient.HostClient:
    _forget(ctx, endpoint)
    info = hostclient.find_host(ctx.data_dir, endpoint)
    if info is None:
        raise DriverError(
            f"the endpoint host of {endpoint!r} is not running",
            "Run `mlctl plan` to see the drift and `mlctl apply` to restart it.",
        )
    return hostclient.HostClient(info)


class ModelDriver:
    """Registers models into the project's model store (immutable NAME/VERSION folders); a new
    version rolls in beside the old one, and registered versions outlive their deployments."""

    def create(self, resource, prior, ctx):
        a = _attrs(resource)
        ctx.progress(str(resource.address), f"registering {a['name']}:{a['version']} into the model store")
        path = store.register_model(ctx.data_dir, a["name"], a["version"], a["path"], a["content_digest"])
        return ModelObserved(model_dir=str(path), content_digest=a["content_digest"])

    def update(self, resource, prior, ctx):
        return self.create(resource, prior, ctx)

    roll = recreate = update

    def delete(self, address, prior, ctx, keep_identity=False):
        """Registered versions outlive their deployments; `mlctl cache prune` removes unused ones."""

    def read(self, address, prior, ctx):
        a = prior.attributes
        if store.registered_digest(ctx.data_dir, a["name"], a["version"]) != a.get("content_digest"):
            return None
        return ModelObserved(
            model_dir=str(store.model_dir(ctx.data_dir, a["name"], a["version"])),
            content_digest=a.get("content_digest"),
        )


class EnvironmentDriver:
    """An environment is a recorded spec; what it builds to is the image (a virtualenv, here and on ray)."""

    def __init__(self, runtime: str = "local"):
        self.runtime = runtime

    def create(self, resource, prior, ctx):
        a = _attrs(resource)
        if a.get("image"):
            ctx.progress(
                str(resource.address),
                f"base image {a['image']!r} is not used by the {self.runtime} "
                "runtime (it builds a virtualenv from the conda file)",
            )
        return EnvironmentObserved(
            spec_digest=a.get("spec_digest"), not_used_by_runtime=["image"] if a.get("image") else []
        )

    def update(self, resource, prior, ctx):
        return self.create(resource, prior, ctx)

    roll = recreate = update

    def delete(self, address, prior, ctx, keep_identity=False):
        pass

    def read(self, address, prior, ctx):
        return prior.observed


class ImageDriver:
    """Builds the environment's virtualenv (cached by spec digest, shared across projects)."""

    def create(self, resource, prior, ctx):
        a = _attrs(resource)
        reqs = requirements(a.get("conda_packages") or (), a.get("pip_packages") or ())
        address = str(resource.address)
        try:
            built = envs.build_env(
                a["spec_digest"],
                a.get("python"),
                reqs,
                progress=lambda m: ctx.progress(address, m),
                source_builds=bool((ctx.settings or {}).get("source_builds")),
            )
        except envs.EnvBuildError as e:
            raise DriverError(
                f"building the virtualenv of {address} failed: {e.summary}",
                f"The build log is {e.log_path}.",
                e.log_tail,
            ) from None
        envs.mark_used(a["spec_digest"])
        return ImageObserved.from_json(built.observed())

    def update(self, resource, prior, ctx):
        return self.create(resource, prior, ctx)

    roll = recreate = update

    def delete(self, address, prior, ctx, keep_identity=False):
        """Virtualenvs stay in the shared cache (another project may use them): `mlctl cache prune`."""

    def read(self, address, prior, ctx):
        built = envs.read_built(prior.attributes["spec_digest"])
        if built is None:
            return None
        envs.mark_used(prior.attributes["spec_digest"])
        return ImageObserved.from_json(built.observed())


def _endpoint_observed(info) -> EndpointObserved:
    base = f"http://127.0.0.1:{info.port}"
    return EndpointObserved(
        alive=True, pid=info.pid, port=info.port, scoring_uri=f"{base}/score", openapi_uri=f"{base}/swagger.json"
    )


class EndpointDriver:
    """One endpoint host process per endpoint; two keys generated at create, kept in the secrets file."""

    def create(self, resource, prior, ctx):
        """Start the host (keeping the keys on file and, unless a port is pinned, the recorded port);
        a host of this endpoint already running (the state was lost) is adopted."""
        a = _attrs(resource)
        name = a["name"]
        secrets.ensure_keys(ctx.data_dir, name)
        info = hostclient.find_host(ctx.data_dir, name)
        if info is not None:
            hostclient.HostClient(info).set_auth(a["auth_mode"])
            hostclient.HostClient(info).reload_keys()
        else:
            info = self._start(resource, prior, ctx)
        _forget(ctx, name)
        return _endpoint_observed(info)

    def _start(self, resource, prior, ctx):
        """Start the host on the pinned port, else the port it had (when still free), else any."""
        a = _attrs(resource)
        recorded = prior.observed.port if prior else None
        tries = [a["port"]] if a.get("port") else ([recorded, None] if recorded else [None])
        for i, port in enumerate(tries):
            ctx.progress(str(resource.address), "starting the endpoint host" + (f" on port {port}" if port else ""))
            try:
                return hostclient.start_host(ctx.data_dir, a["name"], auth_mode=a["auth_mode"], port=port)
            except hostclient.HostError as e:
                if i + 1 < len(tries):
                    ctx.progress(str(resource.address), f"port {port} is taken; the host takes another one")
                    continue
                raise DriverError(
                    f"the endpoint host of {a['name']!r} did not start: {e}",
                    f"See {hostclient.host_log(ctx.data_dir, a['name'])}.",
                    e.log_tail,
                ) from None

    def update(self, resource, prior, ctx):
        a = _attrs(resource)
        _client(ctx, a["name"]).set_auth(a["auth_mode"])
        return _endpoint_observed(hostclient.find_host(ctx.data_dir, a["name"]))

    def recreate(self, resource, prior, ctx):
        """Stop the host (and its instances) and start a new one on the same port with the same keys."""
        self.delete(resource.address, prior, ctx, keep_identity=True)
        return self.create(resource, prior, ctx)

    def delete(self, address, prior, ctx, keep_identity=False):
        """Stop the host and its instances; the keys go too unless the endpoint is recreated."""
        name = address.name
        info = hostclient.find_host(ctx.data_dir, name)
        if info is not None:
            ctx.progress(str(address), "stopping the endpoint host and its instances")
            hostclient.HostClient(info).shutdown()
        _forget(ctx, name)
        if not keep_identity:
            secrets.secrets_path(ctx.data_dir, name).unlink(missing_ok=True)

    def read(self, address, prior, ctx):
        info = _host(ctx, address.name)
        if info is None or _status(ctx, address.name) is None:
            return EndpointObserved(alive=False, port=prior.observed.port)
        return _endpoint_observed(info)


def deployment_observed(d: dict | None) -> DeploymentObserved | None:
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


class DeploymentDriver:
    """A deployment's instances in its endpoint host: created, rolled health-gated, scaled, revived.
    `spec_of(ctx, attributes)` is the serving spec the host gets (the runtime's: processes, containers)."""

    def __init__(self, spec_of=deployment_spec):
        self.spec_of = spec_of

    def _order(self, resource, ctx, verb: str, call):
        a = _attrs(resource)
        try:
            return deployment_observed(call(_client(ctx, a["endpoint"]), a))
        except hostclient.DeploymentFailed as e:
            raise DriverError(
                failure_line(e.message, e.log_tail),
                f"The old instances (if any) keep serving; see `mlctl logs {a['endpoint']} --deployment {a['name']}`.",
                e.log_tail,
            ) from None
        except hostclient.HostError as e:
            raise DriverError(f"{resource.address}: the endpoint host refused to {verb} it: {e}") from None

    def create(self, resource, prior, ctx):
        """Start the instances and wait until they are ready. One the host already runs without a
        record of it here (the state was lost) is replaced health-gated instead."""
        a = _attrs(resource)
        running = a["name"] in ((_status(ctx, a["endpoint"]) or {}).get("deployments") or {})
        spec = self.spec_of(ctx, a)
        ctx.progress(str(resource.address), f"starting {a['instance_count']} instance(s) and waiting until ready")
        if running:
            return self._order(resource, ctx, "start", lambda c, _: c.roll_deployment(spec, timeout=ctx.timeout))
        return self._order(resource, ctx, "start", lambda c, _: c.create_deployment(spec, timeout=ctx.timeout))

    def update(self, resource, prior, ctx):
        """In-place fields are metadata; instances that are down start again at once."""
        return self._order(resource, ctx, "update", lambda c, a: c.revive_deployment(a["name"], timeout=ctx.timeout))

    def scale(self, resource, prior, ctx):
        count = resource.attributes["instance_count"]
        ctx.progress(str(resource.address), f"scaling to {count} instance(s)")
        return self._order(
            resource, ctx, "scale", lambda c, a: c.scale_deployment(a["name"], count, timeout=ctx.timeout)
        )

    def roll(self, resource, prior, ctx):
        """New instances beside the old, traffic moves once they are ready, then the old drain."""
        spec = self.spec_of(ctx, _attrs(resource))
        ctx.progress(str(resource.address), "starting the new instances beside the old and waiting until ready")
        return self._order(resource, ctx, "roll", lambda c, _: c.roll_deployment(spec, timeout=ctx.timeout))

    def recreate(self, resource, prior, ctx):
        """Its endpoint was recreated: a new host has no instances, so they start; a host that still
        runs them replaces them health-gated (there is never a moment without the deployment)."""
        return self.create(resource, prior, ctx)

    def delete(self, address, prior, ctx, keep_identity=False):
        """Drain and stop the deployment (nothing to do when its host is gone)."""
        endpoint, name = prior.attributes["endpoint"], prior.attributes["name"]
        if hostclient.find_host(ctx.data_dir, endpoint) is None:
            return
        status = _client(ctx, endpoint).status()
        if name in status.get("deployments", {}):
            ctx.progress(str(address), "draining and stopping its instances")
            try:
                _client(ctx, endpoint).remove_deployment(name)
            except hostclient.HostError as e:
                raise DriverError(f"{address} could not be deleted: {e}") from None

    def read(self, address, prior, ctx):
        status = _status(ctx, prior.attributes["endpoint"])
        if status is None:
            return None
        return deployment_observed(status.get("deployments", {}).get(prior.attributes["name"]))


class TrafficDriver:
    """Sets an endpoint's traffic weights and mirror in its host (atomically)."""

    def create(self, resource, prior, ctx):
        a = _attrs(resource)
        try:
            _client(ctx, a["endpoint"]).set_traffic(dict(a.get("traffic") or {}), dict(a.get("mirror_traffic") or {}))
        except hostclient.HostError as e:
            raise DriverError(f"{resource.address}: the endpoint host refused the traffic: {e}") from None
        return TrafficObserved(traffic=dict(a.get("traffic") or {}), mirror_traffic=dict(a.get("mirror_traffic") or {}))

    def update(self, resource, prior, ctx):
        return self.create(resource, prior, ctx)

    roll = recreate = update

    def delete(self, address, prior, ctx, keep_identity=False):
        if hostclient.find_host(ctx.data_dir, prior.attributes["endpoint"]) is not None:
            _client(ctx, prior.attributes["endpoint"]).set_traffic({}, {})

    def read(self, address, prior, ctx):
        status = _status(ctx, prior.attributes["endpoint"])
        if status is None:
            return None
        return TrafficObserved(traffic=status.get("traffic", {}), mirror_traffic=status.get("mirror_traffic", {}))


class Guarded:
    """A driver whose host and file-system failures surface as DriverError (apply records them)."""

    def __init__(self, driver):
        self.driver = driver

    def __getattr__(self, method):
        fn = getattr(self.driver, method)

        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except hostclient.HostError as e:
                raise DriverError(f"the endpoint host refused: {e.message}", "", e.log_tail) from None
            except OSError as e:
                raise DriverError(f"{e.strerror or e} ({e.filename or 'no file'})") from None

        return call


def local_drivers(runtime: str = "local") -> dict:
    """{Kind: driver} of the local runtime (and of the ray runtime, which serves its virtualenvs: `runtime`
    names it in what the drivers say)."""
    drivers = {
        Kind.MODEL: ModelDriver(),
        Kind.ENVIRONMENT: EnvironmentDriver(runtime),
        Kind.IMAGE: ImageDriver(),
        Kind.ENDPOINT: EndpointDriver(),
        Kind.DEPLOYMENT: DeploymentDriver(),
        Kind.TRAFFIC: TrafficDriver(),
    }
    return {kind: Guarded(d) for kind, d in drivers.items()}
