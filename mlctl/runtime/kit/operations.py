"""The operations of a runtime whose endpoints are mlctl's endpoint host (every runtime so far).

The endpoint host (gateway + supervisor) is shared by all runtimes, and so is everything the
commands ask of a running endpoint through it: its address, keys and tokens, live status, instance
logs, per-instance usage, and the hosts `destroy` must stop when the state lost them. A runtime
inherits these from `HostedRuntime` and adds its drivers, its preflight and its cache. Its drivers get a
`HostedContext`, which carries the per-run view of the endpoint hosts.
"""

from __future__ import annotations

from collections.abc import Iterator

from mlctl.errors import MlctlError
from mlctl.runtime.contract import InstanceUsage, Runtime
from mlctl.runtime.host import secrets
from mlctl.runtime.host.client import HostClient, HostError, find_host
from mlctl.runtime.kit.capacity import this_machine
from mlctl.runtime.kit.capacitynotes import capacity_warnings
from mlctl.runtime.kit.hostview import HostedContext
from mlctl.endpointurls import client_base


class HostedRuntime(Runtime):
    """A runtime whose endpoints are endpoint-host processes on this machine."""

    def context(self, project, **kwargs) -> HostedContext:
        return HostedContext(project, settings=self.settings, **kwargs)

    def plan_notes(self, resources) -> list:
        """A warning when the deployments' maximums together exceed this machine's CPUs or memory."""
        machine = this_machine()
        return capacity_warnings(list(resources), int(machine.cpus), machine.memory)

    def endpoint_url(self, project, endpoint, attributes=None):
        info = find_host(project.data_dir, endpoint)
        return client_base(attributes or {}, info.port) if info else None

    def authorization(self, project, endpoint, auth_mode):
        try:
            if auth_mode == "aml_token":
                token, _ = secrets.issue_token(project.data_dir, endpoint, ttl_s=300)
                return f"Bearer {token}"
            return f"Bearer {secrets.read_keys(project.data_dir, endpoint)['primary']}"
        except (OSError, ValueError, KeyError):
            raise self._no_keys(project, endpoint) from None

    def keys(self, project, endpoint):
        if not secrets.secrets_path(project.data_dir, endpoint).exists():
            raise MlctlError(f"endpoint {endpoint!r} has no keys yet", detail="Run `mlctl apply` to create them.")
        try:
            keys = secrets.read_keys(project.data_dir, endpoint)
        except (OSError, ValueError, KeyError):
            raise self._no_keys(project, endpoint) from None
        return {"primary": keys["primary"], "secondary": keys["secondary"]}

    def issue_token(self, project, endpoint):
        self.keys(project, endpoint)
        return secrets.issue_token(project.data_dir, endpoint)

    def regenerate_key(self, project, endpoint, which):
        self.keys(project, endpoint)
        secrets.regenerate_key(project.data_dir, endpoint, which)
        info = find_host(project.data_dir, endpoint)
        if info is None:
            return
        try:
            HostClient(info).reload_keys()
        except HostError as e:
            raise MlctlError(
                f"the {which} key of {endpoint} was regenerated and saved, but its endpoint "
                f"host (pid {info.pid}) did not take it: {e.message}",
                detail=f"`mlctl keys {endpoint}` prints the new key; until the host takes it, it "
                f"may still accept the old one. Do not regenerate again: stop the host "
                f"(`kill {info.pid}`; it stops its instances) and run `mlctl apply`, which "
                f"starts it again on the same port with the saved keys.",
            ) from None

    def endpoint_status(self, project, endpoint):
        info = find_host(project.data_dir, endpoint)
        if info is None:
            return None
        try:
            return HostClient(info).status()
        except HostError:
            return None

    def logs(self, project, endpoint, deployment, *, lines, instance=None, follow=False) -> Iterator[str]:
        from mlctl.runtime.host.logfiles import tail

        return tail(project.data_dir, endpoint, deployment, lines=lines, instance=instance, follow=follow)

    def usage(self, project, endpoint, deployment):
        status = self.endpoint_status(project, endpoint)
        live = (status or {}).get("deployments", {}).get(deployment)
        if live is None:
            raise MlctlError(
                f"deployment {deployment!r} of endpoint {endpoint!r} is not running",
                detail="`mlctl show` says what runs; `mlctl apply` starts it.",
            )
        return [
            InstanceUsage(i.get("index", k), float(i.get("cpu_seconds") or 0.0), int(i.get("peak_memory_bytes") or 0))
            for k, i in enumerate(live.get("instances", []))
        ]

    def leftovers(self, project, recorded):
        run = project.data_dir / "run"
        found = []
        for record in sorted(run.glob("*.json")) if run.is_dir() else []:
            info = find_host(project.data_dir, record.stem)
            if info is not None and record.stem not in recorded:
                found.append((f"endpoint host of {record.stem!r} (pid {info.pid})", HostClient(info).shutdown))
        return found

    def left_behind(self, project):
        from mlctl.runtime.host.runfiles import hosts_left_behind

        return hosts_left_behind(project.data_dir)

    @staticmethod
    def _no_keys(project, endpoint) -> MlctlError:
        return MlctlError(
            f"cannot read the keys of endpoint {endpoint!r} ({secrets.secrets_path(project.data_dir, endpoint)})",
            detail=f"Recreate the endpoint to get new keys: `mlctl plan --replace endpoint.{endpoint} "
            f"--out new.plan` then `mlctl apply new.plan`.",
        )
