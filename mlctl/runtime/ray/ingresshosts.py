"""mlctl's side of the in-cluster endpoint hosts (ingress.py): starting and stopping their actors, and reaching the
hosts through them, as the kit's drivers reach a local host (`ClusterHostClient` is a `HostClient` whose admin
requests are actor calls; `ClusterHosts` is the per-run view of `EndpointHosts`).

Each endpoint has `ray.ingress_replicas` hosts (default 2), each a detached actor named
`mlctl-<owner>-<endpoint>-ingress-<i>` in Ray's namespace `mlctl`, restarted by Ray without limit, placed on
distinct nodes while there are enough (soft node affinity), reserving a hundredth of a CPU. An order goes to every
host that runs; once every one took it, the cluster's configuration (hostconfig.py) records it, so a host that was
down, or that Ray restarts later, configures itself with it. `keys --regenerate` writes the new keys there and has every
running host reload them before it returns.
"""

from __future__ import annotations

import json
import os

import mlctl
from mlctl.runtime.contract import DriverError
from mlctl.runtime.host import client as hostclient
from mlctl.runtime.kit.hostview import EndpointHosts
from mlctl.runtime.ray import apps, appspec, cluster, hostconfig

DEFAULT_REPLICAS = 2
# a host reserves a hundredth of a CPU: with none, Ray ignores the soft node affinity that spreads the hosts (both
# landed on one node, Ray 2.60, measured on the three-machine test cluster)
HOST_CPUS = 0.01
CALL_S = 60.0  # an answer from an actor that is not an order's (status, log, ready)


def actor_name(owner: str, endpoint: str, index: int) -> str:
    """Pure: the name of host `index` of an endpoint's actor."""
    return f"{apps.endpoint_prefix(owner, endpoint)}ingress-{index}"


def replicas(settings) -> int:
    """The number of hosts per endpoint: the `ray:` block's `ingress_replicas` (at least 1), else 2."""
    return max(1, int((settings or {}).get("ingress_replicas") or DEFAULT_REPLICAS))


def _handle(name: str):
    import ray

    try:
        return ray.get_actor(name, namespace=cluster.NAMESPACE)
    except ValueError:  # no actor of that name
        return None


def handles(owner: str, endpoint: str) -> list:
    """The actors of an endpoint's hosts that exist, in the order of their index."""
    return [h for h in (_handle(n) for n in owned_actors(owner, endpoint)) if h is not None]


def owned_actors(owner: str, endpoint: str | None = None) -> list[str]:
    """The names of the host actors of `owner` (of one endpoint when given), sorted."""
    import ray

    head = apps.endpoint_prefix(owner, endpoint)
    found = ray.util.list_named_actors(all_namespaces=True)
    return sorted(
        a["name"]
        for a in found
        if a.get("namespace") == cluster.NAMESPACE and a["name"].startswith(head) and "-ingress-" in a["name"]
    )


def start(owner: str, endpoint: str, count: int, timeout: float) -> list[dict]:
    """Start the endpoint's missing host actors (the first alone, when no port is fixed yet: the port it bound
    goes into the configuration for the others) and wait until each host runs; their `status` reports.
    The configuration (hostconfig) must be in the cluster. ClusterError when a host does not come up."""
    from mlctl.runtime.ray.ingress import IngressHost

    import ray

    env = cluster.upload(
        {
            "py_modules": [os.path.dirname(mlctl.__file__)],
            "excludes": appspec.EXCLUDES,
            "env_vars": {apps.OWNER_VAR: owner},
        }
    )
    actor = ray.remote(IngressHost)
    reports = []
    for index in range(count):
        name = actor_name(owner, endpoint, index)
        handle = _handle(name) or actor.options(
            name=name,
            namespace=cluster.NAMESPACE,
            lifetime="detached",
            max_restarts=-1,
            max_concurrency=16,
            num_cpus=HOST_CPUS,
            scheduling_strategy=_spread({r["node_id"] for r in reports}),
            runtime_env=env,
        ).remote(owner, endpoint, index)
        report = ray.get(handle.ready.remote(timeout), timeout=timeout + CALL_S)
        if not report["running"]:
            raise cluster.ClusterError(
                f"the endpoint host {name} did not start on node {report['node_ip']}: "
                + (report["problem"] or "no answer")
                + " (the endpoint's other hosts: "
                + (", ".join(f"{r['node_ip']}:{r['port']}" for r in reports) or "none")
                + ")",
                detail="`mlctl logs ENDPOINT` shows the hosts' own logs.",
            )
        config = hostconfig.read(owner, endpoint) or {}
        if not config.get("port"):
            hostconfig.write(owner, endpoint, {**config, "port": report["port"]})
        reports.append(report)
    for name in owned_actors(owner, endpoint)[count:]:  # fewer hosts than before
        _stop(name)
    return reports


def _spread(taken: set[str]):
    """A new host's placement (reads the cluster's nodes): an alive node where none of the endpoint's other hosts
    (`taken`, their node ids) runs, soft, so Ray places it elsewhere when there is none or when it restarts a host
    whose node is gone (Ray's SPREAD alone put two hosts on one node)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    free = sorted(n["NodeID"] for n in cluster.nodes() if n.get("Alive") and n["NodeID"] not in taken)
    return NodeAffinitySchedulingStrategy(free[0], soft=True) if free else "SPREAD"


def stop(owner: str, endpoint: str) -> None:
    """Stop every host of the endpoint (drained) and end their actors."""
    for name in owned_actors(owner, endpoint):
        _stop(name)


def _stop(name: str) -> None:
    import ray
    from ray.exceptions import RayError

    handle = _handle(name)
    if handle is None:
        return
    try:
        ray.get(handle.stop.remote(), timeout=hostclient.MAX_DRAIN_S)
    except (RayError, TimeoutError):
        pass  # killed below all the same: its host dies with it
    ray.kill(handle, no_restart=True)


def reports(owner: str, endpoint: str) -> list[dict]:
    """Each host's `status` report (a host whose actor does not answer is left out)."""
    import ray
    from ray.exceptions import RayError

    out = []
    for handle in handles(owner, endpoint):
        try:
            out.append(ray.get(handle.status.remote(), timeout=CALL_S))
        except (RayError, TimeoutError):
            continue
    return out


def merged_status(found: list[dict]) -> dict | None:
    """Pure: the endpoint's status as `show` reports it: the first running host's own report, with `hosts` (where
    each one runs); None when no host runs."""
    running = [r for r in found if r["running"]]
    if not running:
        return None
    hosts = [
        {k: r[k] for k in ("index", "node_ip", "node_id", "pid", "actor_pid", "port", "running", "problem")}
        for r in found
    ]
    return {**running[0]["status"], "hosts": hosts}


class ClusterHostClient(hostclient.HostClient):
    """The kit's HostClient for an endpoint whose hosts run in the cluster: each admin request is carried out by
    every running host's actor; the configuration in the cluster records the orders they all took."""

    def __init__(self, owner: str, endpoint: str):
        super().__init__(f"ray:{actor_name(owner, endpoint, 0)}")
        self.owner, self.endpoint = owner, endpoint

    def exchange(self, method: str, path: str, body=None, timeout: float = 30.0) -> tuple[int, bytes]:
        import ray
        from ray.exceptions import RayError

        if method == "GET" and path == "/status":
            status = merged_status(reports(self.owner, self.endpoint))
            if status is None:
                raise hostclient.HostError(f"no host of endpoint {self.endpoint!r} runs in the cluster", "unreachable")
            return 200, json.dumps(status).encode()
        refs = [h.admin.remote(method, path, body, timeout) for h in handles(self.owner, self.endpoint)]
        answers = []
        for ref in refs:
            try:
                answers.append(ray.get(ref, timeout=timeout + CALL_S))
            except (RayError, TimeoutError):
                continue  # an actor that died meanwhile: Ray restarts it and it configures itself from the cluster
        taken = [a for a in answers if a is not None]
        if not taken:
            raise hostclient.HostError(f"no host of endpoint {self.endpoint!r} runs in the cluster", "unreachable")
        refused = next((a for a in taken if a[0] >= 400), None)
        if refused is not None:
            return refused
        config = hostconfig.read(self.owner, self.endpoint)
        if config is not None:
            hostconfig.write(self.owner, self.endpoint, hostconfig.applied(config, method, path, body))
        return taken[0]

    def shutdown(self, timeout: float = 60.0) -> None:
        stop(self.owner, self.endpoint)


class ClusterHosts(EndpointHosts):
    """The per-run view of the project's in-cluster hosts (`runtime` connects to the cluster)."""

    def __init__(self, data_dir, runtime):
        super().__init__(data_dir)
        self.runtime = runtime

    def _owner(self) -> str:
        self.runtime.connect()
        return apps.owner_of(self.data_dir)

    def info(self, endpoint: str) -> hostclient.HostInfo | None:
        status = self.status(endpoint)
        if status is None:
            return None
        return hostclient.HostInfo(status["pid"], status["port"], f"ray:{actor_name(self._owner(), endpoint, 0)}")

    def status(self, endpoint: str) -> dict | None:
        if endpoint not in self._status:
            self._status[endpoint] = merged_status(reports(self._owner(), endpoint))
        return self._status[endpoint]

    def running(self, endpoint: str) -> bool:
        return bool(owned_actors(self._owner(), endpoint))

    def client(self, endpoint: str) -> hostclient.HostClient:
        self.forget(endpoint)
        owner = self._owner()
        if not owned_actors(owner, endpoint):
            raise DriverError(
                f"the endpoint {endpoint!r} has no host in the cluster",
                "Run `mlctl plan` to see the drift and `mlctl apply` to start its hosts.",
            )
        return ClusterHostClient(owner, endpoint)
