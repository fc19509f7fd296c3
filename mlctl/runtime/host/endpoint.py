"""The endpoint host's live state and its orders: deployments, traffic, auth, keys (used by admin and gateway)."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import time

from mlctl import scalesettings

from . import capacity, secrets
from .autoscaler import Autoscaler
from .launcher import InstanceFailed, Place
from .metrics import Metrics
from .routing import MirrorSampler, WeightedPicker, has_live_traffic, traffic_errors
from .spec import ServingSpec, SpecError, scale_settings_of
from .supervisor import Deployment

log = logging.getLogger("mlctl.host")
AUTH_MODES = ("key", "aml_token", "aad_token")


class OrderRefused(Exception):
    """An admin order the host will not carry out; `status` is the HTTP status the admin API answers."""

    def __init__(self, status: int, message: str, kind: str = "refused", log_tail: str = ""):
        super().__init__(message)
        self.status, self.kind, self.log_tail = status, kind, log_tail


class Endpoint:
    """Deployments by name, traffic pickers, auth settings and metrics of one endpoint."""

    def __init__(self, data_dir, name: str, auth_mode: str, place: Place):
        self.data_dir, self.name, self.place = data_dir, name, place
        self.loop = asyncio.get_running_loop()  # kept: the request path asks for it on every request
        self.deployments: dict[str, Deployment] = {}
        self.creating: dict[str, Deployment] = {}
        self.traffic: dict[str, int] = {}
        self.mirror: dict[str, int] = {}
        self.picker = WeightedPicker({})
        self.sampler = MirrorSampler({})
        self.metrics = Metrics()
        self.lock = asyncio.Lock()
        self.auth_mode = "key"
        self.set_auth(auth_mode)
        self.reload_keys()

    # ---- auth ----------------------------------------------------------------------------
    def reload_keys(self) -> None:
        keys = secrets.read_keys(self.data_dir, self.name)
        self._keys = [keys["primary"].encode(), keys["secondary"].encode()]
        self._token_key = keys["token_key"]

    def set_auth(self, auth_mode: str) -> None:
        if auth_mode not in AUTH_MODES:
            raise OrderRefused(400, f"auth_mode must be one of {', '.join(AUTH_MODES)}, got {auth_mode!r}")
        self.auth_mode = auth_mode

    def is_authorized(self, header: bytes | None) -> bool:
        """Bearer key (constant-time against both keys) or a valid unexpired token, per auth_mode
        (`header`: the Authorization header's value as sent)."""
        if not header or header[:7].lower() != b"bearer ":
            return False
        presented = header[7:].strip()
        if self.auth_mode == "key":
            primary, secondary = self._keys
            # both compared, each in constant time (no early exit says which key matched)
            return hmac.compare_digest(presented, primary) | hmac.compare_digest(presented, secondary)
        return secrets.is_valid_token(self._token_key, self.name, presented.decode("latin-1"))

    # ---- orders (each says what to do: the host never compares specs to decide) --------------
    def _parse(self, raw: dict) -> ServingSpec:
        try:
            return ServingSpec.from_dict(raw)
        except SpecError as e:
            raise OrderRefused(400, str(e)) from None

    async def _carry_out(self, name: str, what: str, order, spec: ServingSpec) -> None:
        """Run one order on deployment `name`; a failed start becomes OrderRefused 422 with the log tail."""
        try:
            await order
        except InstanceFailed as e:
            log.warning("deployment %s failed: %s", name, e)
            raise OrderRefused(422, f"{what} {name!r} failed: {e}", "deployment_failed", e.log_tail) from None
        except OSError as e:
            raise OrderRefused(
                422,
                f"deployment {name!r} could not start its instances "
                f"({e.strerror or e}): check that the interpreter {spec.python} exists "
                f"and the code folder {spec.code_dir} is readable",
                "deployment_failed",
                "",
            ) from None

    async def create_deployment(self, raw: dict, timeout: float) -> dict:
        """Start a new deployment's instances, ready before it is listed; 409 when it exists."""
        spec = self._parse(raw)
        if spec.scale_settings:  # it starts within its range, with at least one instance (readiness is checked)
            count = max(1, scalesettings.clamp(spec.instance_count, spec.scale_settings))
            spec = dataclasses.replace(spec, instance_count=count)
        deadline = time.monotonic() + min(timeout, spec.readiness_budget_s)
        async with self.lock:
            if spec.name in self.deployments:
                raise OrderRefused(
                    409,
                    f"endpoint {self.name!r} has a deployment {spec.name!r} already: "
                    "roll it (new instances beside the old) or remove it first",
                    "exists",
                )
            d = self.creating[spec.name] = Deployment(spec, self.place, self.metrics)
            try:
                await self._carry_out(spec.name, "deployment", d.create(deadline), spec)
            finally:
                del self.creating[spec.name]
            self.deployments[spec.name] = d
            log.info("deployment %s created (%d instances)", spec.name, spec.instance_count)
            self._autoscale(d, spec.scale_settings)
            return d.status()

    async def roll_deployment(self, raw: dict, timeout: float) -> dict:
        """New instances of `raw` beside the old, swapped in once all are ready, the old drained; 404 if absent."""
        spec = self._parse(raw)
        deadline = time.monotonic() + min(timeout, spec.readiness_budget_s)
        async with self.lock:
            d = self._deployment(spec.name)
            if spec.scale_settings:  # as many new instances as run now (at least one: it must pass readiness)
                count = max(1, scalesettings.clamp(len(d.instances), spec.scale_settings))
                spec = dataclasses.replace(spec, instance_count=count)
            await self._carry_out(spec.name, "deployment", d.roll(spec, deadline), spec)
            log.info("deployment %s rolled (digest %s)", spec.name, spec.digest)
            self._autoscale(d, spec.scale_settings)
            return d.status()

    async def scale_deployment(self, name: str, count: int, timeout: float) -> dict:
        """Add instances (ready before they take requests) or drain and stop the highest ones; 404 if absent."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise OrderRefused(400, f"instance_count must be an integer >= 1, got {count!r}")
        async with self.lock:
            d = self._deployment(name)
            deadline = time.monotonic() + min(timeout, d.spec.readiness_budget_s)
            await self._carry_out(name, "scaling", d.scale(count, deadline), d.spec)
            return d.status()

    async def set_scaling(self, name: str, raw_settings, count, timeout: float) -> dict:
        """Autoscale within a new range (the count brought into it at once), or hold `count` fixed (None);
        nothing restarts. 404 if absent."""
        try:
            settings = scale_settings_of(raw_settings)
        except SpecError as e:
            raise OrderRefused(400, str(e)) from None
        if not settings and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise OrderRefused(400, f"instance_count must be an integer >= 1, got {count!r}")
        async with self.lock:
            d = self._deployment(name)
            current = len(d.instances)
            target = scalesettings.clamp(current, settings) if settings else count
            d.spec = dataclasses.replace(d.spec, scale_settings=settings)
            d.slots.spec = d.spec
            self._autoscale(d, settings)
            if target != current:
                log.info("deployment %s: %d -> %d instance(s) (scaling settings set)", name, current, target)
                deadline = time.monotonic() + min(timeout, d.spec.readiness_budget_s)
                await self._carry_out(name, "scaling", d.scale(target, deadline), d.spec)
            return d.status()

    def _autoscale(self, d: Deployment, settings: dict | None) -> None:
        """Start, retarget or stop the deployment's autoscaler for `settings` (None: a fixed count)."""
        if settings and d.autoscaler is not None:
            d.autoscaler.retarget(settings)
        elif settings:
            d.autoscaler = Autoscaler(d, settings, self.lock, self.room)
            d.autoscaler.start()
        elif d.autoscaler is not None:
            old, d.autoscaler = d.autoscaler, None
            self.loop.create_task(old.close())

    def room(self, d: Deployment, added: int) -> str | None:
        """None when the machine can hold `added` more instances of `d`, else why not (capacity.py)."""
        return capacity.room_for(d, added, self.deployments.values())

    async def revive_deployment(self, name: str, timeout: float) -> dict:
        """Restart at once the instances that are down (drift repair); 404 if absent."""
        async with self.lock:
            d = self._deployment(name)
            deadline = time.monotonic() + min(timeout, d.spec.readiness_budget_s)
            await self._carry_out(name, "reviving", d.revive(deadline), d.spec)
            return d.status()

    async def remove_deployment(self, name: str) -> None:
        async with self.lock:
            d = self._deployment(name)
            if has_live_traffic(name, self.traffic, self.mirror):
                raise OrderRefused(
                    409,
                    f"deployment {name!r} still has live traffic "
                    f"(traffic {self.traffic.get(name, 0)}%, mirror {self.mirror.get(name, 0)}%); "
                    "set its traffic to 0 first",
                    "has_traffic",
                )
            del self.deployments[name]
            if d.autoscaler is not None:
                await d.autoscaler.close()
            self.traffic.pop(name, None)
            self.mirror.pop(name, None)
            self._rebuild_pickers()
            await d.stop()
            log.info("deployment %s removed", name)

    async def set_traffic(self, traffic: dict, mirror: dict) -> None:
        async with self.lock:
            errors = traffic_errors(traffic, mirror, self.deployments)
            if errors:
                raise OrderRefused(400, "; ".join(errors))
            self.traffic = {n: p for n, p in traffic.items()}
            self.mirror = {n: p for n, p in mirror.items()}
            self._rebuild_pickers()
            log.info("traffic set to %s, mirror %s", self.traffic, self.mirror)

    def _rebuild_pickers(self) -> None:
        self.picker = WeightedPicker(self.traffic)
        self.sampler = MirrorSampler(self.mirror)

    def _deployment(self, name: str) -> Deployment:
        if name not in self.deployments:
            raise OrderRefused(404, f"endpoint {self.name!r} has no deployment {name!r}", "not_found")
        return self.deployments[name]

    async def stop_all(self) -> None:
        ds = list(self.deployments.values()) + list(self.creating.values())
        await asyncio.gather(*(d.autoscaler.close() for d in ds if d.autoscaler), return_exceptions=True)
        self.deployments = {}
        self._rebuild_pickers()
        await asyncio.gather(*(d.stop() for d in ds), return_exceptions=True)

    def status(self, port: int, pid: int) -> dict:
        deployments = {n: d.status() for n, d in sorted(self.deployments.items())}
        for n, d in self.creating.items():
            deployments.setdefault(n, d.status())
        return {
            "endpoint": self.name,
            "pid": pid,
            "port": port,
            "auth_mode": self.auth_mode,
            "traffic": dict(self.traffic),
            "mirror_traffic": dict(self.mirror),
            "deployments": deployments,
        }
