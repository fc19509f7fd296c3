"""The commands' side of the ray runtime when the endpoint hosts live in the cluster (`ray.ingress: cluster`): keys,
tokens, the endpoint's URL, `show`'s status, the hosts' logs and the hosts `destroy` must stop, all read from the
cluster (hostconfig.py, ingresshosts.py) instead of this machine's files and processes. Mixed into RayRuntime
before the kit's runtime: with the hosts on this machine (the default) every method is the kit's.
"""

from __future__ import annotations

from collections.abc import Iterator

from mlctl.errors import MlctlError
from mlctl.runtime.host import secrets
from mlctl.runtime.kit.hostview import HostedContext
from mlctl.runtime.ray import apps, hostconfig, ingressdriver, ingresshosts


class ClusterIngress:
    """RayRuntime's commands for in-cluster hosts (`self.in_cluster`); `self.connect()` reaches the cluster."""

    settings: dict

    def connect(self) -> None:
        raise NotImplementedError

    @property
    def in_cluster(self) -> bool:
        """Do the endpoint hosts live in the cluster (`ingress: cluster` in the `ray:` block)?"""
        return (self.settings.get("ingress") or "local") == "cluster"

    @property
    def hosts_here(self) -> bool:
        """Do the endpoints live on the machine that applied them (mlctl.state.location)? Not in the cluster."""
        return not self.in_cluster

    def _owner(self, project) -> str:
        self.connect()
        return apps.owner_of(project.data_dir)

    def _config(self, project, endpoint) -> dict:
        config = hostconfig.read(self._owner(project), endpoint)
        if not config or not config.get("keys"):
            raise MlctlError(
                f"endpoint {endpoint!r} has no hosts' configuration in the cluster",
                detail="Run `mlctl apply` to create it (its keys are made there).",
            )
        return config

    def context(self, project, **kwargs) -> HostedContext:
        if not self.in_cluster:
            return super().context(project, **kwargs)  # type: ignore[misc]
        hosts = ingresshosts.ClusterHosts(project.data_dir, self)
        return HostedContext(project, settings=self.settings, hosts=hosts, **kwargs)

    def endpoint_url(self, project, endpoint, attributes=None):
        if not self.in_cluster:
            return super().endpoint_url(project, endpoint, attributes)  # type: ignore[misc]
        status = self.endpoint_status(project, endpoint)
        found = ingressdriver.observed(dict(attributes or {}), status)
        return found.scoring_uri.removesuffix("/score") if found.scoring_uri else None

    def endpoint_address(self, project, endpoint, attributes):
        """In the cluster: the first running host's node address."""
        if not self.in_cluster:
            return super().endpoint_address(project, endpoint, attributes)  # type: ignore[misc]
        hosts = [h for h in (self.endpoint_status(project, endpoint) or {}).get("hosts") or [] if h["running"]]
        if not hosts:
            raise MlctlError(
                f"no host of endpoint {endpoint!r} runs in the cluster",
                detail="`mlctl show` says where each runs; `mlctl plan` shows the drift.",
            )
        return hosts[0]["node_ip"]

    def authorization(self, project, endpoint, auth_mode):
        if not self.in_cluster:
            return super().authorization(project, endpoint, auth_mode)  # type: ignore[misc]
        keys = self._config(project, endpoint)["keys"]
        if auth_mode == "aml_token":
            return f"Bearer {secrets.token_for(keys, endpoint, ttl_s=300)[0]}"
        return f"Bearer {keys['primary']}"

    def keys(self, project, endpoint):
        if not self.in_cluster:
            return super().keys(project, endpoint)  # type: ignore[misc]
        keys = self._config(project, endpoint)["keys"]
        return {"primary": keys["primary"], "secondary": keys["secondary"]}

    def issue_token(self, project, endpoint):
        if not self.in_cluster:
            return super().issue_token(project, endpoint)  # type: ignore[misc]
        return secrets.token_for(self._config(project, endpoint)["keys"], endpoint)

    def regenerate_key(self, project, endpoint, which):
        """The new key goes into the cluster's configuration, then every running host reloads it before this
        returns (a host that is down reads it when it starts)."""
        if not self.in_cluster:
            return super().regenerate_key(project, endpoint, which)  # type: ignore[misc]
        owner = self._owner(project)
        config = self._config(project, endpoint)
        hostconfig.write(owner, endpoint, {**config, "keys": secrets.regenerated(config["keys"], which)})
        try:
            ingresshosts.ClusterHostClient(owner, endpoint).reload_keys(timeout=30)
        except MlctlError as e:
            raise MlctlError(
                f"the {which} key of {endpoint} was regenerated and saved in the cluster, but not every endpoint "
                f"host took it: {e.diagnostics[0].summary}",
                detail="A host reads the keys when it starts or is configured again; `mlctl apply` does that.",
            ) from None

    def endpoint_status(self, project, endpoint):
        if not self.in_cluster:
            return super().endpoint_status(project, endpoint)  # type: ignore[misc]
        try:
            return ingresshosts.merged_status(ingresshosts.reports(self._owner(project), endpoint))
        except MlctlError:
            return None

    def logs(self, project, endpoint, deployment, *, lines, instance=None, follow=False) -> Iterator[str]:
        """Without a deployment: each in-cluster host's own log, read on its node through its actor."""
        if not self.in_cluster or deployment is not None:
            yield from super().logs(project, endpoint, deployment, lines=lines, instance=instance, follow=follow)  # type: ignore[misc]
            return
        import ray

        owner = self._owner(project)
        answering = dict(ingresshosts.answering(owner, endpoint))
        for index, handle in ingresshosts.indexed_handles(owner, endpoint):
            yield f"==> {ingresshosts.actor_name(owner, endpoint, index)}"
            if index not in answering:
                yield "(its actor cannot answer now: `mlctl show` says why)"
                continue
            yield from ray.get(handle.log.remote(lines), timeout=ingresshosts.CALL_S).splitlines()

    def leftovers(self, project, recorded):
        """The kit's and Serve's leftovers, and the in-cluster hosts of endpoints the state does not record."""
        found = list(super().leftovers(project, recorded))  # type: ignore[misc]
        if not self.in_cluster:
            return found
        try:
            owner = self._owner(project)
            names = ingresshosts.owned_actors(owner)
        except MlctlError:
            return found
        ends = {n.removeprefix(apps.endpoint_prefix(owner)).rpartition("-ingress-")[0] for n in names}
        for endpoint in sorted(ends - set(recorded)):
            found.append(
                (f"endpoint hosts of {endpoint!r} in the cluster", lambda e=endpoint: ingresshosts.stop(owner, e))
            )
        return found
