"""A runtime that keeps everything in memory: the contract of mlctl.runtime.contract, nothing running.

`FakeWorld` is what "really runs" (endpoints, deployments, traffic, models, images); a test changes
it behind mlctl's back to make drift. Every order a driver receives is appended to `world.calls` as
(address, order), and `world.fail[(address, order)]` makes that order raise DriverError, or any
other exception (KeyboardInterrupt to interrupt apply), once; `world.delay[(address, order)]` makes it
take that many seconds, and `world.say[(address, order)]` has it report that progress message first.
Like the scoring server, a deployment whose environment_variables set FAIL_INIT fails to start; the
deployment it replaces keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field

from mlctl.resources import Kind
from mlctl.runtime.contract import DriverError, InstanceUsage, Runtime, Unscalable
from mlctl.observed import (
    DeploymentObserved,
    EndpointObserved,
    EnvironmentObserved,
    ImageObserved,
    ModelObserved,
    TrafficObserved,
)


@dataclass
class FakeWorld:
    endpoints: dict = field(default_factory=dict)  # name -> {"port", "auth_mode", "keys", "alive"}
    deployments: dict = field(default_factory=dict)  # (endpoint, name) -> {"spec", "count", "ready"}
    traffic: dict = field(default_factory=dict)  # endpoint -> (traffic, mirror)
    models: dict = field(default_factory=dict)  # (name, version) -> digest
    images: set = field(default_factory=set)  # spec digests built
    calls: list = field(default_factory=list)  # (address, order) in the order received
    fail: dict = field(default_factory=dict)  # (address, order) -> exception to raise once
    delay: dict = field(default_factory=dict)  # (address, order) -> seconds the order takes
    say: dict = field(default_factory=dict)  # (address, order) -> a progress message it gives first
    next_port: int = 41000

    def order(self, address, order: str, ctx=None) -> None:
        self.calls.append((str(address), order))
        message = self.say.get((str(address), order))
        if message is not None and ctx is not None:
            ctx.progress(str(address), message)
        if self.delay.get((str(address), order)):
            time.sleep(self.delay[(str(address), order)])
        error = self.fail.pop((str(address), order), None)
        if error is not None:
            raise error

    def runtime(self, name: str = "fake"):
        """A factory for mlctl.runtime.registry.register: every load sees this world."""
        return lambda settings: FakeRuntime(self, name, settings)


def _serving_digest(a: dict) -> str:
    body = {k: v for k, v in a.items() if k not in ("instance_count", "description", "tags")}
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class _Driver(Unscalable):
    def __init__(self, world: FakeWorld):
        self.world = world

    def update(self, resource, prior, ctx):
        self.world.order(resource.address, "update", ctx)
        return self._make(resource, prior)

    def create(self, resource, prior, ctx):
        self.world.order(resource.address, "create", ctx)
        return self._make(resource, prior)

    def roll(self, resource, prior, ctx):
        self.world.order(resource.address, "roll", ctx)
        return self._make(resource, prior)

    def recreate(self, resource, prior, ctx):
        self.world.order(resource.address, "recreate", ctx)
        self._remove(resource.address, prior, keep_identity=True)
        return self._make(resource, prior)

    def delete(self, address, prior, ctx, keep_identity=False):
        self.world.order(address, "delete", ctx)
        self._remove(address, prior, keep_identity)

    def _remove(self, address, prior, keep_identity):
        pass


class ModelDriver(_Driver):
    def _make(self, r, prior):
        a = r.attributes
        self.world.models[(a["name"], a["version"])] = a["content_digest"]
        return ModelObserved(model_dir=f"fake://models/{a['name']}/{a['version']}", content_digest=a["content_digest"])

    def read(self, address, prior, ctx):
        a = prior.attributes
        digest = self.world.models.get((a["name"], a["version"]))
        return None if digest != a.get("content_digest") else ModelObserved(content_digest=digest)


class EnvironmentDriver(_Driver):
    def _make(self, r, prior):
        return EnvironmentObserved(spec_digest=r.attributes.get("spec_digest"), not_used_by_runtime=[])

    def read(self, address, prior, ctx):
        return prior.observed


class ImageDriver(_Driver):
    def _make(self, r, prior):
        self.world.images.add(r.attributes["spec_digest"])
        return ImageObserved(path=f"fake://images/{r.attributes['spec_digest']}", frozen=[])

    def read(self, address, prior, ctx):
        return prior.observed if prior.attributes["spec_digest"] in self.world.images else None


class EndpointDriver(_Driver):
    def _make(self, r, prior):
        a = r.attributes
        old = self.world.endpoints.get(a["name"])
        recorded = (prior.observed.port if prior else None) or (old or {}).get("kept_port")
        port = a.get("port") or recorded or self._port()
        keys = (old or {}).get("keys") or {"primary": secrets.token_hex(8), "secondary": secrets.token_hex(8)}
        self.world.endpoints[a["name"]] = {"port": port, "auth_mode": a["auth_mode"], "keys": keys, "alive": True}
        return self._observed(a["name"])

    def _port(self):
        self.world.next_port += 1
        return self.world.next_port

    def _observed(self, name):
        port = self.world.endpoints[name]["port"]
        return EndpointObserved(
            alive=True,
            port=port,
            pid=1,
            scoring_uri=f"http://127.0.0.1:{port}/score",
            openapi_uri=f"http://127.0.0.1:{port}/swagger.json",
        )

    def _remove(self, address, prior, keep_identity):
        ep = self.world.endpoints.pop(address.name, None)
        for key in [k for k in self.world.deployments if k[0] == address.name]:
            del self.world.deployments[key]
        self.world.traffic.pop(address.name, None)
        if keep_identity and ep:  # the keys and port outlive the host, as the secrets file does
            self.world.endpoints[address.name] = {**ep, "alive": False, "kept_port": ep["port"]}

    def read(self, address, prior, ctx):
        ep = self.world.endpoints.get(address.name)
        if not ep or not ep["alive"]:
            return EndpointObserved(alive=False, port=prior.observed.port)
        return self._observed(address.name)


class DeploymentDriver(_Driver):
    def _make(self, r, prior):
        a = r.attributes
        if a["endpoint"] not in self.world.endpoints or not self.world.endpoints[a["endpoint"]]["alive"]:
            raise DriverError(f"the endpoint host of {a['endpoint']!r} is not running")
        if (a.get("environment_variables") or {}).get("FAIL_INIT"):
            raise DriverError(
                f"{r.address} failed to start: init() raised",
                "The old instances keep serving.",
                "Traceback (most recent call last):\nRuntimeError: init failed on purpose",
            )
        key = (a["endpoint"], a["name"])
        self.world.deployments[key] = {
            "spec": _serving_digest(a),
            "count": a["instance_count"],
            "ready": a["instance_count"],
            "model": a.get("model_digest"),
            "code": a.get("code_digest"),
        }
        return self._observed(key)

    def scale(self, resource, prior, ctx):
        self.world.order(resource.address, "scale", ctx)
        d = self.world.deployments[(resource.attributes["endpoint"], resource.attributes["name"])]
        d["count"] = d["ready"] = resource.attributes["instance_count"]
        return self._observed((resource.attributes["endpoint"], resource.attributes["name"]))

    def update(self, resource, prior, ctx):
        self.world.order(resource.address, "update", ctx)
        key = (resource.attributes["endpoint"], resource.attributes["name"])
        if key not in self.world.deployments:
            raise DriverError(f"{resource.address} is not running")
        self.world.deployments[key]["ready"] = self.world.deployments[key]["count"]  # revive
        return self._observed(key)

    def _observed(self, key):
        d = self.world.deployments[key]
        return DeploymentObserved(
            state="ready" if d["ready"] == d["count"] else "degraded",
            instance_count=d["count"],
            ready_instances=d["ready"],
            served_model_digest=d["model"],
            served_code_digest=d["code"],
            serving_digest=d["spec"],
            instances=[{"index": i, "ready": i < d["ready"]} for i in range(d["count"])],
        )

    def _remove(self, address, prior, keep_identity):
        self.world.deployments.pop((prior.attributes["endpoint"], prior.attributes["name"]), None)

    def read(self, address, prior, ctx):
        key = (prior.attributes["endpoint"], prior.attributes["name"])
        return self._observed(key) if key in self.world.deployments else None


class TrafficDriver(_Driver):
    def _make(self, r, prior):
        a = r.attributes
        if a["endpoint"] not in self.world.endpoints or not self.world.endpoints[a["endpoint"]]["alive"]:
            raise DriverError(f"the endpoint host of {a['endpoint']!r} is not running")
        self.world.traffic[a["endpoint"]] = (dict(a.get("traffic") or {}), dict(a.get("mirror_traffic") or {}))
        return TrafficObserved(traffic=dict(a.get("traffic") or {}), mirror_traffic=dict(a.get("mirror_traffic") or {}))

    def _remove(self, address, prior, keep_identity):
        self.world.traffic.pop(prior.attributes["endpoint"], None)

    def read(self, address, prior, ctx):
        endpoint = prior.attributes["endpoint"]
        if endpoint not in self.world.endpoints or not self.world.endpoints[endpoint]["alive"]:
            return None
        traffic, mirror = self.world.traffic.get(endpoint, ({}, {}))
        return TrafficObserved(traffic=traffic, mirror_traffic=mirror)


class FakeRuntime(Runtime):
    """The fake runtime over one FakeWorld."""

    def __init__(self, world: FakeWorld, name: str = "fake", settings=None):
        super().__init__(settings)
        self.world, self.name = world, name
        self.drivers = {
            Kind.MODEL: ModelDriver(world),
            Kind.ENVIRONMENT: EnvironmentDriver(world),
            Kind.IMAGE: ImageDriver(world),
            Kind.ENDPOINT: EndpointDriver(world),
            Kind.DEPLOYMENT: DeploymentDriver(world),
            Kind.TRAFFIC: TrafficDriver(world),
        }

    def _endpoint(self, name):
        ep = self.world.endpoints.get(name)
        return ep if ep and ep["alive"] else None

    def endpoint_url(self, project, endpoint, attributes=None):
        ep = self._endpoint(endpoint)
        return f"http://127.0.0.1:{ep['port']}" if ep else None

    def authorization(self, project, endpoint, auth_mode):
        return f"Bearer {self.keys(project, endpoint)['primary']}"

    def keys(self, project, endpoint):
        return dict(self.world.endpoints[endpoint]["keys"])

    def regenerate_key(self, project, endpoint, which):
        self.world.endpoints[endpoint]["keys"][which] = secrets.token_hex(8)

    def endpoint_status(self, project, endpoint):
        ep = self._endpoint(endpoint)
        if ep is None:
            return None
        traffic, mirror = self.world.traffic.get(endpoint, ({}, {}))
        deployments = {
            name: {
                "state": "ready",
                "ready_instances": d["ready"],
                "instances": [
                    {"index": i, "pid": None, "ready": i < d["ready"], "restarts": 0} for i in range(d["count"])
                ],
            }
            for (e, name), d in self.world.deployments.items()
            if e == endpoint
        }
        return {"pid": 1, "port": ep["port"], "traffic": traffic, "mirror_traffic": mirror, "deployments": deployments}

    def usage(self, project, endpoint, deployment):
        d = self.world.deployments[(endpoint, deployment)]
        return [InstanceUsage(i, 0.0, 0) for i in range(d["count"])]

    def leftovers(self, project, recorded):
        return [
            (f"fake endpoint {name!r}", lambda name=name: self.world.endpoints.pop(name, None))
            for name, ep in sorted(self.world.endpoints.items())
            if ep["alive"] and name not in recorded
        ]
