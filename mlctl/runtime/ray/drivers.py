"""The ray runtime's drivers: the local runtime's for models, environments, images, endpoints and traffic
(the model store and virtualenvs on this machine, the endpoint host in front), and deployments as Serve
applications behind the endpoint host.

A deployment's version (its serving digest) is one Serve application, deployed by name. A roll deploys
the new version's application beside the old, waits until its replicas run, hands the endpoint host
the new spec (the host moves traffic once the new application answers its readiness probes through
Serve's proxy and drains the old), then deletes the old application. Each method is one order of
`mlctl.runtime.contract`.
"""

from __future__ import annotations

import shutil
import time

from mlctl.resources import Kind
from mlctl.runtime.contract import DriverError
from mlctl.runtime.failures import failure_line
from mlctl.runtime.host import client as hostclient
from mlctl.runtime.local.drivers import Guarded, _client, _status, deployment_observed, local_drivers
from mlctl.runtime.observed import DeploymentObserved
from mlctl.runtime.ray import apps, cluster, serving


class RayDeploymentDriver:
    """A deployment as Serve applications (one per version) behind its endpoint host."""

    def __init__(self, runtime):
        self.runtime = runtime

    # ---- helpers -------------------------------------------------------------------------
    def _owner(self, ctx) -> str:
        return apps.owner_of(ctx.data_dir)

    def _deploy(self, resource, ctx) -> tuple[dict, apps.AppName]:
        """Deploy (or find running) the application of this version and wait until its replicas run;
        the host's spec reaching it. A failed application is deleted (the old one keeps serving)."""
        from mlctl.runtime.ray.replica import bind

        a = dict(resource.attributes)
        address = str(resource.address)
        self.runtime.connect()
        owner = self._owner(ctx)
        spec, app = serving.host_spec(ctx, a, owner)
        current = apps.owned(cluster.details(), owner).get(str(app))
        if current is None or apps.status(current) in ("DEPLOY_FAILED", "DELETING"):
            ctx.progress(address, f"deploying Serve application {app} ({a['instance_count']} replica(s))")
            stage = serving.staged(ctx.data_dir, spec)
            try:
                env = cluster.upload(serving.runtime_env(stage, owner, spec))
            finally:
                shutil.rmtree(stage, ignore_errors=True)
            options = serving.replica_options(spec, env, self.runtime.replica_cpus)
            cluster.deploy(bind(serving.replica_spec(spec, app), options), str(app), app.route_prefix)
        elif apps.target_replicas(current) != a["instance_count"]:
            ctx.progress(address, f"scaling Serve application {app} to {a['instance_count']} replica(s)")
            cluster.scale(str(app), apps.DEPLOYMENT_NAME, a["instance_count"])
        self._wait(app, address, ctx)
        return serving.with_upstream(spec, cluster.proxy_address(), app), app

    def _wait(self, app, address, ctx) -> None:
        try:
            cluster.wait_running(str(app), ctx.timeout, lambda m: ctx.progress(address, f"Serve: {m}"))
        except cluster.ClusterError as e:
            d = e.diagnostics[0]
            cluster.delete([str(app)])
            raise DriverError(
                f"{address} failed: {d.summary}",
                "The previous version (if any) keeps serving; the failed application was deleted. "
                "`mlctl logs ENDPOINT --deployment NAME` shows the replicas' logs.",
                d.detail,
            ) from None

    def _retire(self, ctx, a: dict, keep: str | None) -> None:
        """Delete this deployment's applications but `keep` (only mlctl's own, of this project)."""
        owner = self._owner(ctx)
        mine = apps.owned(cluster.details(), owner, apps.deployment_prefix(owner, a["endpoint"], a["name"]))
        old = [n for n in mine if n != keep]
        if old:
            ctx.progress(f"deployment.{a['endpoint']}.{a['name']}", f"deleting Serve application(s) {', '.join(old)}")
            cluster.delete(old)

    def _host_order(self, resource, ctx, verb: str, call):
        a = dict(resource.attributes)
        try:
            return call(_client(ctx, a["endpoint"]))
        except hostclient.DeploymentFailed as e:
            raise DriverError(
                failure_line(e.message, e.log_tail),
                "The old version keeps serving; `mlctl logs` shows the replicas' logs.",
                e.log_tail,
            ) from None
        except hostclient.HostError as e:
            raise DriverError(f"{resource.address}: the endpoint host refused to {verb} it: {e}") from None

    def _host_ready(self, ctx, a: dict, spec: dict) -> dict | None:
        """The host's status of the deployment once its instances answer through Serve again (the host
        probes them every readiness period), or as it is after two periods and a bit."""
        period = float((spec.get("readiness_probe") or {}).get("period", 10))
        deadline = time.monotonic() + 2 * period + 5
        while True:
            ctx.memo.pop(f"status:{a['endpoint']}", None)
            host = ((_status(ctx, a["endpoint"]) or {}).get("deployments") or {}).get(a["name"])
            if host is None or host.get("ready_instances", 0) >= a["instance_count"] or time.monotonic() > deadline:
                return host
            time.sleep(0.2)

    def _observed(self, ctx, a: dict, host: dict | None) -> DeploymentObserved:
        ctx.memo.pop(f"status:{a['endpoint']}", None)
        return self._read(ctx, a, host)

    # ---- orders --------------------------------------------------------------------------
    def create(self, resource, prior, ctx):
        """Deploy the application, then hand its spec to the host (a roll when the host already has the
        deployment: the state was lost, or the endpoint was recreated with its instances kept)."""
        a = dict(resource.attributes)
        spec, app = self._deploy(resource, ctx)
        running = a["name"] in ((_status(ctx, a["endpoint"]) or {}).get("deployments") or {})
        try:
            if running:
                host = self._host_order(resource, ctx, "start", lambda c: c.roll_deployment(spec, timeout=ctx.timeout))
            else:
                host = self._host_order(
                    resource, ctx, "start", lambda c: c.create_deployment(spec, timeout=ctx.timeout)
                )
        except DriverError:
            if not running:
                cluster.delete([str(app)])
            raise
        self._retire(ctx, a, keep=str(app))
        return self._observed(ctx, a, host)

    def roll(self, resource, prior, ctx):
        """The new version's application beside the old; the host moves traffic once it answers, then the
        old application is deleted."""
        a = dict(resource.attributes)
        spec, app = self._deploy(resource, ctx)
        ctx.progress(str(resource.address), "moving traffic to the new version once it answers through Serve")
        try:
            host = self._host_order(resource, ctx, "roll", lambda c: c.roll_deployment(spec, timeout=ctx.timeout))
        except DriverError:
            if prior is None or (prior.observed or DeploymentObserved()).serving_digest != spec["digest"]:
                cluster.delete([str(app)])
            raise
        self._retire(ctx, a, keep=str(app))
        return self._observed(ctx, a, host)

    def recreate(self, resource, prior, ctx):
        return self.create(resource, prior, ctx)

    def scale(self, resource, prior, ctx):
        """Set the application's replica count (the replicas kept go on serving), then the host's instances."""
        a = dict(resource.attributes)
        self._deploy(resource, ctx)
        host = self._host_order(
            resource, ctx, "scale", lambda c: c.scale_deployment(a["name"], a["instance_count"], timeout=ctx.timeout)
        )
        return self._observed(ctx, a, host)

    def update(self, resource, prior, ctx):
        """Drift repair: the application deployed again when it was deleted outside mlctl, scaled back when
        its replica count was changed, waited for until its replicas run; the host's spec kept."""
        a = dict(resource.attributes)
        spec, app = self._deploy(resource, ctx)
        status = (_status(ctx, a["endpoint"]) or {}).get("deployments") or {}
        if a["name"] not in status:
            host = self._host_order(resource, ctx, "start", lambda c: c.create_deployment(spec, timeout=ctx.timeout))
        elif status[a["name"]].get("digest") != spec["digest"]:
            host = self._host_order(resource, ctx, "roll", lambda c: c.roll_deployment(spec, timeout=ctx.timeout))
        else:
            self._host_order(resource, ctx, "update", lambda c: c.revive_deployment(a["name"], timeout=ctx.timeout))
            host = self._host_ready(ctx, a, spec)
        self._retire(ctx, a, keep=str(app))
        return self._observed(ctx, a, host)

    def delete(self, address, prior, ctx, keep_identity=False):
        """Drain it in the host, then delete its applications (only those mlctl made for this project)."""
        a = prior.attributes
        if hostclient.find_host(ctx.data_dir, a["endpoint"]) is not None:
            if a["name"] in (_client(ctx, a["endpoint"]).status().get("deployments") or {}):
                ctx.progress(str(address), "draining it in the endpoint host")
                try:
                    _client(ctx, a["endpoint"]).remove_deployment(a["name"])
                except hostclient.HostError as e:
                    raise DriverError(f"{address} could not be deleted: {e}") from None
        self.runtime.connect()
        self._retire(ctx, a, keep=None)

    def read(self, address, prior, ctx):
        a = prior.attributes
        self.runtime.connect()
        host = (_status(ctx, a["endpoint"]) or {}).get("deployments", {}).get(a["name"])
        return self._read(ctx, a, host, prior)

    def _read(self, ctx, a: dict, host: dict | None, prior=None) -> DeploymentObserved | None:
        """What Serve runs of this deployment (the application of the version the host serves), with the
        host's view; None when neither Serve nor the host has it."""
        owner = self._owner(ctx)
        mine = apps.owned(cluster.details(), owner, apps.deployment_prefix(owner, a["endpoint"], a["name"]))
        digest = (host or {}).get("digest") or (prior.observed.serving_digest if prior and prior.observed else None)
        app = next((d for n, d in mine.items() if digest and apps.serves(d, digest)), None)
        if app is None and host is None:
            return None
        seen = deployment_observed(host) if host else DeploymentObserved()
        if app is None:
            # deleted outside mlctl: nothing serves (drift: ready below the count; apply deploys it again)
            return DeploymentObserved(
                state="missing from Serve",
                instance_count=seen.instance_count,
                ready_instances=0,
                served_model_digest=seen.served_model_digest,
                served_code_digest=seen.served_code_digest,
                serving_digest=digest,
                instances=[],
                extra={"applications": sorted(mine)},
            )
        marks = apps.marks(app)
        replicas = apps.replicas(app)
        running = [r for r in replicas if r["state"] == "RUNNING"]
        state = (
            "ready"
            if apps.status(app) == "RUNNING" and len(running) >= apps.target_replicas(app)
            else apps.status(app).lower()
        )
        return DeploymentObserved(
            state=state,
            instance_count=apps.target_replicas(app),
            ready_instances=min(len(running), seen.ready_instances if host else len(running)),
            served_model_digest=marks.get("MLCTL_MODEL_DIGEST") or None,
            served_code_digest=marks.get("MLCTL_CODE_DIGEST") or None,
            serving_digest=marks.get("MLCTL_SERVING_DIGEST") or digest,
            instances=replicas,
            extra={"application": app.get("name"), "nodes": sorted({r["node_id"] for r in running})},
        )


class ClusterGuarded(Guarded):
    """Guarded, and the cluster's refusals (cluster.ClusterError) as DriverError too (apply records them)."""

    def __getattr__(self, method):
        call = super().__getattr__(method)

        def guarded(*args, **kwargs):
            try:
                return call(*args, **kwargs)
            except cluster.ClusterError as e:
                d = e.diagnostics[0]
                raise DriverError(d.summary, d.detail) from None

        return guarded


def ray_drivers(runtime) -> dict:
    """{Kind: driver} of the ray runtime."""
    return {**local_drivers("ray"), Kind.DEPLOYMENT: ClusterGuarded(RayDeploymentDriver(runtime))}
