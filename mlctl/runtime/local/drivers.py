"""The local runtime's drivers, one per kind: model store, recorded environments, virtualenv images,
endpoint hosts, deployments and traffic (the last three through the endpoint host's admin socket).

Drivers do what apply tells them and report what they observe; they never decide.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from mlctl.resources import Kind
from mlctl.runtime.drivers import DriverError, RuntimeContext
from mlctl.runtime.local import envs, hostclient, secrets, snapshot, store
from mlctl.requirements import requirements

RUNTIME = "local"


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


def _client(ctx: RuntimeContext, endpoint: str) -> hostclient.HostClient:
    ctx.memo.pop(f"status:{endpoint}", None)
    ctx.memo.pop(f"host:{endpoint}", None)
    info = hostclient.find_host(ctx.data_dir, endpoint)
    if info is None:
        raise DriverError(f"the endpoint host of {endpoint!r} is not running",
                          "Run `mlctl plan` to see the drift and `mlctl apply` to restart it.")
    return hostclient.HostClient(info)


class ModelDriver:
    """Registers models into the project's model store (immutable NAME/VERSION folders)."""

    def create(self, resource, ctx):
        a = _attrs(resource)
        ctx.progress(str(resource.address), f"registering {a['name']}:{a['version']} into the model store")
        path = store.register_model(ctx.data_dir, a["name"], a["version"], a["path"], a["content_digest"])
        return {"model_dir": str(path), "content_digest": a["content_digest"]}

    def update(self, resource, prior, ctx):
        return self.create(resource, ctx)

    def delete(self, address, prior, ctx):
        """Registered versions outlive their deployments; `mlctl cache prune` removes unused ones."""

    def read(self, address, prior, ctx):
        a = prior.attributes
        if store.registered_digest(ctx.data_dir, a["name"], a["version"]) != a.get("content_digest"):
            return None
        return {"model_dir": str(store.model_dir(ctx.data_dir, a["name"], a["version"])),
                "content_digest": a.get("content_digest")}


class EnvironmentDriver:
    """An environment is a recorded spec; what it builds to is the image."""

    def create(self, resource, ctx):
        a = _attrs(resource)
        if a.get("image"):
            ctx.progress(str(resource.address), f"base image {a['image']!r} is not used by the local runtime "
                         "(it builds a virtualenv from the conda file)")
        return {"spec_digest": a.get("spec_digest"), "not_used_by_runtime": ["image"] if a.get("image") else []}

    def update(self, resource, prior, ctx):
        return self.create(resource, ctx)

    def delete(self, address, prior, ctx):
        pass

    def read(self, address, prior, ctx):
        return dict(prior.observed)


class ImageDriver:
    """Builds the environment's virtualenv (cached by spec digest, shared across projects)."""

    def create(self, resource, ctx):
        a = _attrs(resource)
        reqs = requirements(a.get("conda_packages") or (), a.get("pip_packages") or ())
        address = str(resource.address)
        try:
            built = envs.build_env(a["spec_digest"], a.get("python"), reqs,
                                   progress=lambda m: ctx.progress(address, m))
        except envs.EnvBuildError as e:
            raise DriverError(f"building the virtualenv of {address} failed",
                              f"The build log is {e.log_path}.", e.log_tail) from None
        envs.mark_used(a["spec_digest"])
        return built.observed()

    def update(self, resource, prior, ctx):
        return self.create(resource, ctx)

    def delete(self, address, prior, ctx):
        """Virtualenvs stay in the shared cache (another project may use them): `mlctl cache prune`."""

    def read(self, address, prior, ctx):
        built = envs.read_built(prior.attributes["spec_digest"])
        if built is None:
            return None
        envs.mark_used(prior.attributes["spec_digest"])
        return built.observed()


def _endpoint_observed(ctx, name: str, info) -> dict:
    base = f"http://127.0.0.1:{info.port}"
    return {"alive": True, "pid": info.pid, "port": info.port, "scoring_uri": f"{base}/score",
            "openapi_uri": f"{base}/swagger.json"}


class EndpointDriver:
    """One endpoint host process per endpoint; two keys generated at create, kept in the secrets file."""

    def create(self, resource, ctx):
        a = _attrs(resource)
        name = a["name"]
        secrets.ensure_keys(ctx.data_dir, name)
        info = hostclient.find_host(ctx.data_dir, name)
        if info is not None:           # already running (state lost or recreated): adopt it
            hostclient.HostClient(info).set_auth(a["auth_mode"])
            hostclient.HostClient(info).reload_keys()
        else:
            info = self._start(resource, ctx)
        ctx.memo.pop(f"host:{name}", None)
        return _endpoint_observed(ctx, name, info)

    def _start(self, resource, ctx):
        """Start the host on the pinned port, else the port it had (when still free), else any."""
        a = _attrs(resource)
        prior = ctx.prior_of(resource.address)
        recorded = prior.observed.get("port") if prior else None
        tries = [a["port"]] if a.get("port") else ([recorded, None] if recorded else [None])
        for i, port in enumerate(tries):
            ctx.progress(str(resource.address), "starting the endpoint host" + (f" on port {port}" if port else ""))
            try:
                return hostclient.start_host(ctx.data_dir, a["name"], auth_mode=a["auth_mode"], port=port)
            except hostclient.HostError as e:
                if i + 1 < len(tries):
                    ctx.progress(str(resource.address), f"port {port} is taken; the host takes another one")
                    continue
                raise DriverError(f"the endpoint host of {a['name']!r} did not start: {e}",
                                  f"See {hostclient.host_log(ctx.data_dir, a['name'])}.", e.log_tail) from None

    def update(self, resource, prior, ctx):
        a = _attrs(resource)
        info = hostclient.find_host(ctx.data_dir, a["name"])
        if info is None:
            return self.create(resource, ctx)
        hostclient.HostClient(info).set_auth(a["auth_mode"])
        return _endpoint_observed(ctx, a["name"], info)

    def delete(self, address, prior, ctx):
        name = address.name
        info = hostclient.find_host(ctx.data_dir, name)
        if info is not None:
            ctx.progress(str(address), "stopping the endpoint host and its instances")
            hostclient.HostClient(info).shutdown()
        ctx.memo.pop(f"host:{name}", None)
        ctx.memo.pop(f"status:{name}", None)
        if not ctx.replacing:
            secrets.secrets_path(ctx.data_dir, name).unlink(missing_ok=True)

    def read(self, address, prior, ctx):
        info = _host(ctx, address.name)
        if info is None or _status(ctx, address.name) is None:
            return {"alive": False, "port": prior.observed.get("port")}
        return _endpoint_observed(ctx, address.name, info)


def spec_digest(spec: dict) -> str:
    """Pure: the identity of what a deployment's instances run (everything but instance_count),
    so a scale is not mistaken for a replace."""
    body = {k: v for k, v in spec.items() if k not in ("instance_count", "digest")}
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def deployment_python(ctx, a: dict) -> str:
    """The interpreter of a deployment: its image's virtualenv, or mlctl's own without an environment."""
    if not a.get("environment"):
        return sys.executable
    built = envs.read_built(a["image_digest"]) if a.get("image_digest") else None
    if built is None:
        raise DriverError(f"the virtualenv of environment {a['environment']!r} is not built",
                          "Run `mlctl apply` again: the plan rebuilds the image first.")
    return built.python_executable


def deployment_spec(ctx, a: dict) -> dict:
    """The endpoint host's deployment spec for deployment attributes `a` (snapshots the code)."""
    code_dir = snapshot.snapshot_code(ctx.data_dir, a["code"], a["code_digest"]) if a.get("code") else None
    spec = {
        "name": a["name"], "python": deployment_python(ctx, a),
        "code_dir": str(code_dir or Path(a.get("code") or ".")), "scoring_script": a["scoring_script"],
        "model_dir": str(store.model_dir(ctx.data_dir, a["model"], a["model_version"])),
        "model_digest": a.get("model_digest"), "code_digest": a.get("code_digest"),
        "instance_count": a["instance_count"],
        "environment_variables": {str(k): str(v) for k, v in (a.get("environment_variables") or {}).items()},
        "request_settings": a.get("request_settings") or {}, "liveness_probe": a.get("liveness_probe") or {},
        "readiness_probe": a.get("readiness_probe") or {},
    }
    spec["digest"] = spec_digest(spec)
    return spec


def deployment_observed(d: dict | None) -> dict | None:
    if d is None:
        return None
    return {"state": d.get("state"), "instance_count": d.get("instance_count"),
            "ready_instances": d.get("ready_instances", 0), "served_model_digest": d.get("model_digest"),
            "served_code_digest": d.get("code_digest"), "spec_digest": d.get("digest"),
            "instances": d.get("instances", [])}


class DeploymentDriver:
    """Starts a deployment's instances in its endpoint host; replaces health-gated; scales in place."""

    def create(self, resource, ctx):
        a = _attrs(resource)
        spec = deployment_spec(ctx, a)
        client = _client(ctx, a["endpoint"])
        ctx.progress(str(resource.address), f"starting {a['instance_count']} instance(s) and waiting until ready")
        try:
            status = client.put_deployment(spec, timeout=ctx.timeout)
        except hostclient.DeploymentFailed as e:
            raise DriverError(f"{resource.address} failed to start: {e}",
                              f"The old instances (if any) keep serving; see `mlctl logs {a['endpoint']} "
                              f"--deployment {a['name']}`.", e.log_tail) from None
        except hostclient.HostError as e:
            raise DriverError(f"{resource.address}: the endpoint host refused it: {e}") from None
        return deployment_observed(status)

    def update(self, resource, prior, ctx):
        return self.create(resource, ctx)       # the host scales when only instance_count changed

    def delete(self, address, prior, ctx):
        """Drain and stop the deployment. Within `-/+` nothing is stopped: the create that follows
        replaces its instances health-gated, so its traffic never meets a missing deployment."""
        endpoint, name = prior.attributes["endpoint"], prior.attributes["name"]
        if ctx.replacing or hostclient.find_host(ctx.data_dir, endpoint) is None:
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

    def create(self, resource, ctx):
        a = _attrs(resource)
        try:
            _client(ctx, a["endpoint"]).set_traffic(dict(a.get("traffic") or {}), dict(a.get("mirror_traffic") or {}))
        except hostclient.HostError as e:
            raise DriverError(f"{resource.address}: the endpoint host refused the traffic: {e}") from None
        return {"traffic": dict(a.get("traffic") or {}), "mirror_traffic": dict(a.get("mirror_traffic") or {})}

    def update(self, resource, prior, ctx):
        return self.create(resource, ctx)

    def delete(self, address, prior, ctx):
        if not ctx.replacing and hostclient.find_host(ctx.data_dir, prior.attributes["endpoint"]) is not None:
            _client(ctx, prior.attributes["endpoint"]).set_traffic({}, {})

    def read(self, address, prior, ctx):
        status = _status(ctx, prior.attributes["endpoint"])
        if status is None:
            return None
        return {"traffic": status.get("traffic", {}), "mirror_traffic": status.get("mirror_traffic", {})}


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


def local_runtime() -> dict:
    """{Kind: driver} of the local runtime."""
    drivers = {Kind.MODEL: ModelDriver(), Kind.ENVIRONMENT: EnvironmentDriver(), Kind.IMAGE: ImageDriver(),
               Kind.ENDPOINT: EndpointDriver(), Kind.DEPLOYMENT: DeploymentDriver(), Kind.TRAFFIC: TrafficDriver()}
    return {kind: Guarded(d) for kind, d in drivers.items()}
