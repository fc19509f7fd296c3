"""mlctl's side of the in-cluster endpoint hosts (ingress.py): starting and stopping their actors, and reaching the
hosts through them, as the kit's drivers reach a local host (`ClusterHostClient` is a `HostClient` whose admin
requests are actor calls; `ClusterHosts` is the per-run view of `EndpointHosts`).

Each endpoint has `ray.ingress_replicas` hosts (default 2), each a detached actor named
`mlctl-<owner>-<endpoint>-ingress-<i>` in Ray's namespace `mlctl`, restarted by Ray without limit, each in its own
bundle of the endpoint's placement group (ingressplacement.py: one host per node, also after a node dies). Whether a
host can answer is read from Ray's tables first (ingresshealth.py). An order goes to every host that answers; once
every one took it, the cluster's configuration (hostconfig.py) records it, so a host that was down, or that Ray
restarts later, configures itself with it. `keys --regenerate` writes the new keys there and has every running host
reload them before it returns.
"""

from __future__ import annotations

import json
import os

import mlctl
from mlctl.runtime.contract import DriverError
from mlctl.runtime.host import client as hostclient
from mlctl.runtime.kit.hostview import EndpointHosts
from mlctl.runtime.ray import apps, appspec, cluster, hostconfig, ingresshealth, ingressplacement

DEFAULT_REPLICAS = 2
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
    return [h for _, h in indexed_handles(owner, endpoint)]


def indexed_handles(owner: str, endpoint: str) -> list[tuple[int, object]]:
    """(index, actor) of each of an endpoint's hosts that exists: looked up by the names the configuration implies
    (a named actor that Ray is restarting is found that way; Ray's list of named actors left one out right after
    its process was killed, and a refresh then saw no host), else by Ray's list."""
    config = hostconfig.read(owner, endpoint) or {}
    names = [actor_name(owner, endpoint, i) for i in range(int(config.get("replicas") or 0))]
    found = [(int(n.rpartition("-")[2]), _handle(n)) for n in names or owned_actors(owner, endpoint)]
    return [(i, h) for i, h in found if h is not None]


def answering(owner: str, endpoint: str) -> list[tuple[int, object]]:
    """(index, actor) of the hosts whose actors can answer now (ALIVE on an alive node: ingresshealth.py); an order
    sent to the others would wait until Ray placed them again."""
    alive = ingresshealth.alive_nodes()
    return [
        (i, h)
        for i, h in indexed_handles(owner, endpoint)
        if not ingresshealth.lost(i, ingresshealth.actor_info(h), alive)
    ]


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
    group = ingressplacement.ensure(owner, endpoint, count, timeout)
    count = group.bundle_count  # one host per node at most (ingressplacement.py)
    config = hostconfig.read(owner, endpoint) or {}
    if config.get("replicas") != count:
        hostconfig.write(owner, endpoint, {**config, "replicas": count})
    reports, alive = [], ingresshealth.alive_nodes()
    for index in range(count):
        name = actor_name(owner, endpoint, index)
        handle = _handle(name)
        if handle is not None and ingresshealth.lost(index, ingresshealth.actor_info(handle), alive):
            continue  # Ray is placing it again: it configures itself from the cluster when it starts
        handle = handle or actor.options(
            name=name,
            namespace=cluster.NAMESPACE,
            lifetime="detached",
            max_restarts=-1,
            max_concurrency=16,
            num_cpus=ingressplacement.HOST_CPUS,
            scheduling_strategy=ingressplacement.strategy(group, index),
            runtime_env=env,
        ).remote(owner, endpoint, index)
        report = ray.get(handle.ready.remote(timeout), timeout=timeout + CALL_S)
        if report["status"] is None:
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


def stop(owner: str, endpoint: str) -> None:
    """Stop every host of the endpoint (drained), end their actors and remove their placement group."""
    for name in owned_actors(owner, endpoint):
        _stop(name)
    ingressplacement.remove(owner, endpoint)


def _stop(name: str) -> None:
    import ray
    from ray.exceptions import RayError

    handle = _handle(name)
    if handle is None:
        return
    try:
        if not ingresshealth.lost(0, ingresshealth.actor_info(handle), ingresshealth.alive_nodes()):
            ray.get(handle.stop.remote(), timeout=hostclient.MAX_DRAIN_S)  # (a lost one has nothing to drain)
    except (RayError, TimeoutError):
        pass  # killed below all the same: its host dies with it
    ray.kill(handle, no_restart=True)


def reports(owner: str, endpoint: str) -> list[dict]:
    """Each host's `status` report, in the order of their index: asked of the actors that can answer, made from
    Ray's tables for the others (lost with their node, restarting, waiting for a node: ingresshealth.py).
    ClusterError when none answered with its host's own status while some actor or host process was there but
    silent (an overloaded cluster): "could not ask" is never "not running", which a refresh would take for drift
    and repair by recreating the endpoint."""
    import ray
    from ray.exceptions import RayError

    alive = ingresshealth.alive_nodes()
    out, asked = [], []
    found = dict(indexed_handles(owner, endpoint))
    config = hostconfig.read(owner, endpoint) or {}
    for index in sorted(set(found) | set(range(int(config.get("replicas") or 0)))):
        handle = found.get(index)  # none: its actor is gone for good (killed outside mlctl): apply starts it again
        gone = ingresshealth.lost(index, ingresshealth.actor_info(handle) if handle else {}, alive)
        if gone is not None:
            out.append(gone)
        else:
            asked.append(handle.status.remote())
    silent = 0
    for ref in asked:
        try:
            out.append(ray.get(ref, timeout=CALL_S))
        except (RayError, TimeoutError):
            silent += 1
    silent += sum(1 for r in out if r["running"] and r["status"] is None)
    if silent and not any(r["status"] is not None for r in out):
        raise cluster.ClusterError(
            f"the endpoint hosts of {endpoint!r} did not answer within {CALL_S:.0f}s ({silent} silent)",
            detail="Their actors or processes are there but busy (an overloaded cluster?): try again.",
        )
    return sorted(out, key=lambda r: r["index"])


def merged_status(found: list[dict]) -> dict | None:
    """Pure: the endpoint's status as `show` reports it: the first answering host's own report, with `hosts` (where
    each one runs); None when no host answers."""
    answered = [r for r in found if r["status"] is not None]
    if not answered:
        return None
    hosts = [{k: r[k] for k in ("index", "node_ip", "node_id", "pid", "actor_pid", "port", "problem")} for r in found]
    for host, r in zip(hosts, found):
        host["running"] = r["status"] is not None
    return {**answered[0]["status"], "hosts": hosts}


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
        refs = [h.admin.remote(method, path, body, timeout) for _, h in answering(self.owner, self.endpoint)]
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
        return bool(handles(self._owner(), endpoint))

    def read_ahead(self, endpoints) -> None:
        """Nothing is read ahead: each endpoint's hosts are asked through Ray when a driver reads them. (The kit's
        read-ahead looks for hosts on this machine, where in-cluster hosts never are: it recorded every endpoint
        as not running, and a refresh planned to replace endpoints that served.)"""

    def client(self, endpoint: str) -> hostclient.HostClient:
        self.forget(endpoint)
        owner = self._owner()
        if not handles(owner, endpoint):
            raise DriverError(
                f"the endpoint {endpoint!r} has no host in the cluster",
                "Run `mlctl plan` to see the drift and `mlctl apply` to start its hosts.",
            )
        return ClusterHostClient(owner, endpoint)
