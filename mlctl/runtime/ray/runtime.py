"""The ray runtime: deployments served by Ray Serve on an existing Ray cluster, behind mlctl's endpoint host.

Models, environments (virtualenvs), images and the endpoint host are the kit's (as on the local runtime), on the
machine that runs mlctl (a node of the cluster, or one that reaches Serve's proxy); deployments are
Serve applications (`drivers.py`). What only this runtime knows at run time is here: the cluster's
address and the preflight that reaches it, the replicas' logs (from Ray, on whatever node they run),
and the applications `destroy` must delete that the state lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from mlctl import runtimerecords
from mlctl.errors import MlctlError
from mlctl.resources import Kind
from mlctl.runtime.kit import capacity
from mlctl.runtime.kit.virtualenvimages import VirtualenvRuntime
from mlctl.runtime.ray import apps, cluster, packages
from mlctl.runtime.ray.drivers import ray_drivers
from mlctl.runtime.ray.ingressruntime import ClusterIngress


class RayRuntime(ClusterIngress, VirtualenvRuntime):
    name = "ray"

    def __init__(self, settings=None):
        super().__init__(settings)
        self.drivers = ray_drivers(self, runtimerecords.launcher_of(self.name))
        self.replica_cpus = float(self.settings.get("replica_cpus") or 1)

    @property
    def address(self) -> str:
        return cluster.cluster_address(self.settings)

    def connect(self) -> None:
        """Connect to the cluster (once per process); ClusterError naming the address when none answers."""
        cluster.connect(self.address)

    def preflight(self, resources: Iterable) -> None:
        """The local checks (an interpreter for each environment), then: a cluster answers at the address, and
        each deployment's resources.requests fit its largest node (what Ray places a replica by), and each
        environment on a Python the nodes lack has an interpreter that can be shipped to them."""
        resources = list(resources)
        super().preflight(resources)
        self.connect()
        problems = packages.shipping_problems(resources)
        sized = [r for r in resources if r.kind is Kind.DEPLOYMENT and r.attributes.get("resources")]
        if sized:
            requests_only = [_requests_only(r) for r in sized]
            problems += capacity.sizing_problems(requests_only, capacity.largest_node(cluster.nodes()), "ray")
        if problems:
            raise MlctlError(*problems)

    def endpoint_status(self, project, endpoint):
        """The endpoint host's status, each instance with the Serve replica it is (`replica_id`, `node_id`),
        when the cluster answers (show names them; without the cluster, the host's status alone)."""
        status = super().endpoint_status(project, endpoint)
        if not status:
            return status
        try:
            self.connect()
            found = cluster.details()
        except MlctlError:
            return status
        owner = apps.owner_of(project.data_dir)
        for name, d in (status.get("deployments") or {}).items():
            mine = apps.owned(found, owner, apps.deployment_prefix(owner, endpoint, name))
            replicas = [r for _, app in sorted(mine.items()) for r in apps.replicas(app) if r["state"] == "RUNNING"]
            unnamed = [i for i in d.get("instances") or [] if not i.get("replica_id")]  # (the host names its own)
            for instance, replica in zip(unnamed, replicas):
                instance.update(replica_id=replica["replica_id"], node_id=replica["node_id"])
        return status

    def logs(self, project, endpoint, deployment, *, lines, instance=None, follow=False) -> Iterator[str]:
        """The endpoint host's log without a deployment; with one, its replicas' Serve logs (each replica's
        file on its node, read through Ray), one replica when `instance` is given."""
        if deployment is None:
            yield from super().logs(project, endpoint, deployment, lines=lines, instance=instance, follow=follow)
            return
        self.connect()
        owner = apps.owner_of(project.data_dir)
        mine = apps.owned(cluster.details(), owner, apps.deployment_prefix(owner, endpoint, deployment))
        if not mine:
            raise MlctlError(
                f"deployment {deployment!r} of endpoint {endpoint!r} has no Serve application running",
                detail="`mlctl plan --refresh-only` shows the drift; `mlctl apply` deploys it again.",
            )
        chosen = [
            (name, r)
            for name, app in sorted(mine.items())
            for r in apps.replicas(app)
            if instance is None or r["index"] == instance
        ]
        offsets = {}
        for name, r in chosen:
            yield f"==> {name} replica {r['index']} ({r['replica_id']}, node {str(r['node_id'])[:12]}, {r['state']})"
            try:
                text, offsets[r["replica_id"]] = cluster.node_log(r["node_id"], r["log_file"], -1, lines)
                yield from text.splitlines()
            except MlctlError as e:  # a replica that died with its node: say so, show the others
                yield f"(its log cannot be read: {e.diagnostics[0].summary})"
        while follow and offsets:
            time.sleep(1.0)
            for name, r in chosen:
                if r["replica_id"] in offsets:
                    text, offsets[r["replica_id"]] = cluster.node_log(
                        r["node_id"], r["log_file"], offsets[r["replica_id"]]
                    )
                    yield from text.splitlines()

    def leftovers(self, project, recorded):
        """The endpoint hosts the state lost (as every hosted runtime), and this project's Serve applications of
        endpoints the state does not record."""
        found = list(super().leftovers(project, recorded))
        try:
            self.connect()
            owner = apps.owner_of(project.data_dir)
            names = apps.owned(cluster.details(), owner)
        except MlctlError:
            return found
        recorded = set(recorded)
        for name in sorted(names):
            parsed = apps.parse(name, owner)
            if parsed is None or not any(name.startswith(apps.endpoint_prefix(owner, e)) for e in recorded):
                found.append((f"Serve application {name}", lambda n=name: cluster.delete([n])))
        return found


def runtime(settings) -> RayRuntime:
    return RayRuntime(settings)


def _requests_only(resource):
    """The deployment with its limits left out: Ray places replicas by their requests and enforces no limit."""
    import dataclasses

    sizing = dict(resource.attributes["resources"])
    sizing["limits"] = {}
    return dataclasses.replace(resource, attributes={**resource.attributes, "resources": sizing})
