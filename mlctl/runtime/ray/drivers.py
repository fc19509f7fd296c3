"""The ray runtime's drivers: the kit's, with deployments as Serve applications behind the endpoint host
(`ServeApplications`, the kit's `Platform` for Ray Serve).

A deployment's version (its serving digest) is one Serve application, deployed by name. Before the host's
order the version's application is deployed (or found running, or scaled to the count) and waited for;
the host gets the spec naming the "serve" launcher with the replicas' servers (directory.py), which it reaches
directly (it moves traffic once they answer its readiness probes, and drains the old). After it, the
deployment's other applications are deleted. Each method is one order of `mlctl.runtime.contract`; which
order it is, the plan chose.
"""

from __future__ import annotations

import shutil

from mlctl import scalesettings
from mlctl.resources import Kind
from mlctl.runtime.contract import DriverError, Order
from mlctl.runtime.kit.drivers import DeploymentDriver, Guarded, Platform, TrafficDriver, guarded
from mlctl.runtime.kit.endpoints import EndpointDriver
from mlctl.runtime.kit.drivers import deployment_observed
from mlctl.runtime.kit.records import EnvironmentDriver, ModelDriver
from mlctl.runtime.kit.virtualenvimages import ImageDriver
from mlctl.observed import DeploymentObserved
from mlctl.runtime.ray import apps, appspec, cluster, directory, packages
from mlctl.runtime.ray.ingressdriver import IngressDriver
from mlctl.waiting import Timeout, wait_until


class ServeApplications(Platform):
    """A deployment as Serve applications (one per version) behind its endpoint host. `runtime` connects to
    the cluster and says how many CPUs a replica takes."""

    def __init__(self, runtime):
        self.runtime = runtime

    def before(self, order, resource, spec, ctx):
        """Deploy (or find running, or scale) the application of this version and wait until its replicas run;
        the host's spec reaching it. A failed application is deleted (the old one keeps serving)."""
        from mlctl.runtime.ray.replica import bind

        made = spec()
        a = dict(resource.attributes)
        address = str(resource.address)
        self.runtime.connect()
        owner = apps.owner_of(ctx.data_dir)
        app = appspec.application(owner, a, made)
        secret = directory.hop_secret(apps.endpoint_prefix(owner, a["endpoint"]))
        current = apps.owned(cluster.details(), owner).get(str(app))
        ranged = scalesettings.settings_of(a)
        if ranged:  # the host's autoscaler owns the count: a new version starts with as many as run now
            running = (ctx.hosts.deployment(a["endpoint"], a["name"]) or {}).get("instance_count")
            made = {**made, "instance_count": scalesettings.initial_count(ranged)}
            if isinstance(running, int) and running > 0:
                made["instance_count"] = max(1, scalesettings.clamp(running, ranged))
        if current is None or apps.status(current) in ("DEPLOY_FAILED", "DELETING"):
            ctx.progress(address, f"deploying Serve application {app} ({made['instance_count']} replica(s))")
            environment = packages.ship(owner, a["image_digest"]) if a.get("environment") else None
            stage = appspec.staged(ctx.data_dir, made)
            try:
                env = cluster.upload(appspec.runtime_env(stage, owner, made, environment))
            finally:
                shutil.rmtree(stage, ignore_errors=True)
            options = appspec.replica_options(made, env, self.runtime.replica_cpus)
            cluster.deploy(bind(appspec.replica_spec(made, secret, environment), options), str(app))
        elif not ranged and apps.target_replicas(current) != a["instance_count"]:
            ctx.progress(address, f"scaling Serve application {app} to {a['instance_count']} replica(s)")
            cluster.scale(str(app), apps.DEPLOYMENT_NAME, a["instance_count"])
        self._wait(app, address, ctx)
        if order is Order.ROLL:
            ctx.progress(address, "moving traffic to the new version once its servers answer")
        return appspec.with_servers(made, self.runtime.address, app, secret, directory.servers(str(app)) or [])

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

    def failed(self, attributes):
        return "The old version keeps serving; `mlctl logs` shows the replicas' logs."

    def refused(self, order, resource, spec, prior, was_running, ctx):
        """The host did not take the new version: its application goes, unless it is the one serving."""
        if spec is None:
            return
        serving = (prior.observed or DeploymentObserved()).serving_digest if prior is not None else None
        if (order is Order.ROLL and serving != spec["digest"]) or (order is Order.CREATE and not was_running):
            cluster.delete([str(self._app(resource.attributes, spec, ctx))])

    def after(self, order, resource, spec, host, ctx):
        """The deployment's other applications are deleted; after a revive, the host's report once its
        instances answer through Serve again."""
        a = resource.attributes
        if order is Order.SCALE:
            return host
        if order is Order.UPDATE:
            host = self._host_ready(ctx, a, spec)
        self._retire(ctx, a, keep=str(self._app(a, spec, ctx)))
        return host

    def _app(self, a, spec, ctx) -> apps.AppName:
        return appspec.application(apps.owner_of(ctx.data_dir), a, spec)

    def _host_ready(self, ctx, a, spec: dict) -> dict | None:
        """The host's report of the deployment once its instances answer through Serve again (the host
        probes them every readiness period), or as it is after two periods and a bit."""
        period = float((spec.get("readiness_probe") or {}).get("period", 10))
        seen: dict = {}

        def ready() -> bool:
            ctx.hosts.forget_status(a["endpoint"])
            seen["host"] = ctx.hosts.deployment(a["endpoint"], a["name"])
            return seen["host"] is None or seen["host"].get("ready_instances", 0) >= a["instance_count"]

        try:
            wait_until(ready, 2 * period + 5, "the endpoint host sees the revived replicas ready", interval=0.2)
        except Timeout:
            pass  # reported as it is: the plan after this apply shows what is not ready
        return seen["host"]

    def _retire(self, ctx, a, keep: str | None) -> None:
        """Delete this deployment's applications but `keep` (only mlctl's own, of this project)."""
        owner = apps.owner_of(ctx.data_dir)
        mine = apps.owned(cluster.details(), owner, apps.deployment_prefix(owner, a["endpoint"], a["name"]))
        old = [n for n in mine if n != keep]
        if old:
            ctx.progress(f"deployment.{a['endpoint']}.{a['name']}", f"deleting Serve application(s) {', '.join(old)}")
            cluster.delete(old)
        if keep is None and not apps.owned(cluster.details(), owner, apps.endpoint_prefix(owner, a["endpoint"])):
            directory.forget_secret(apps.endpoint_prefix(owner, a["endpoint"]))

    def retire(self, address, attributes, ctx):
        self.runtime.connect()
        self._retire(ctx, attributes, keep=None)

    def observe(self, attributes, host, prior, ctx) -> DeploymentObserved | None:
        """What Serve runs of this deployment (the application of the version the host serves), with the
        host's view; None when neither Serve nor the host has it."""
        a = attributes
        self.runtime.connect()
        owner = apps.owner_of(ctx.data_dir)
        mine = apps.owned(cluster.details(), owner, apps.deployment_prefix(owner, a["endpoint"], a["name"]))
        digest = (host or {}).get("digest") or (prior.observed.serving_digest if prior and prior.observed else None)
        app = next((d for n, d in mine.items() if digest and apps.serves(d, digest)), None)
        if app is None and host is None:
            return None
        seen = deployment_observed(host) or DeploymentObserved()
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
            ready_instances=min(
                len(running), seen.ready_instances if host and seen.ready_instances is not None else len(running)
            ),
            served_model_digest=marks.get("MLCTL_MODEL_DIGEST") or None,
            served_code_digest=marks.get("MLCTL_CODE_DIGEST") or None,
            serving_digest=marks.get("MLCTL_SERVING_DIGEST") or digest,
            instances=replicas,
            extra={"application": app.get("name"), "nodes": sorted({r["node_id"] for r in running})},
        )


class ClusterGuarded(Guarded):
    """Guarded, and the cluster's refusals (cluster.ClusterError) as DriverError too (apply records them)."""

    def translate(self, e):
        if isinstance(e, cluster.ClusterError):
            d = e.diagnostics[0]
            return DriverError(d.summary, d.detail)
        return super().translate(e)


def ray_drivers(runtime, launcher: str) -> dict:
    """{Kind: driver} of the ray runtime (`runtime` connects to the cluster)."""
    return guarded(
        {
            Kind.MODEL: ModelDriver(),
            Kind.ENVIRONMENT: EnvironmentDriver(runtime.name),
            Kind.IMAGE: ImageDriver(),
            Kind.ENDPOINT: IngressDriver(runtime) if runtime.in_cluster else EndpointDriver(),
            Kind.DEPLOYMENT: DeploymentDriver(appspec.host_spec, launcher, ServeApplications(runtime)),
            Kind.TRAFFIC: TrafficDriver(),
        },
        guard=ClusterGuarded,
    )
