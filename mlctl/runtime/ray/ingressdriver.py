"""The ray runtime's endpoint driver when the endpoint hosts live in the cluster (`ray.ingress: cluster`): create
writes the hosts' configuration into the cluster (hostconfig.py: keys made there, the TLS material read from the
project's files) and starts their actors (ingresshosts.py); update writes the new auth mode or certificate there
and every host takes it; delete stops the hosts and removes the configuration. Nothing of the endpoint is kept on
the applying machine but mlctl's state (and, in the data folder, the project's owner id: `ray/owner`), so any
machine with the state and a route to the cluster carries on.
"""

from __future__ import annotations

from pathlib import Path

from mlctl.observed import EndpointObserved
from mlctl.runtime.contract import DriverError, Unscalable
from mlctl.runtime.host import secrets
from mlctl.runtime.kit import listening
from mlctl.runtime.kit.hostview import HostedContext
from mlctl.runtime.ray import apps, hostconfig, ingresshealth, ingresshosts, loadshare

START_S = 120.0  # one host's start (the actor scheduled, its package fetched, the host up and configured)


def listen_settings(attributes: dict, data_dir, endpoint: str) -> tuple[dict, dict | None]:
    """The hosts' listen settings but the address (each host binds its node's), and the TLS material (PEM text of
    the certificate, key and client CA, read here; None without TLS). ValueError/OSError when unreadable."""
    wanted = listening.host_listen(attributes, data_dir, endpoint) or {}
    listen = {
        "trusted_proxies": list(wanted.get("trusted_proxies") or []),
        "behind_tls_proxy": bool(wanted.get("behind_tls_proxy")),
    }
    if not wanted.get("certificate"):
        return listen, None
    tls = {k: Path(wanted[k]).read_text() for k in ("certificate", "key", "client_ca") if wanted.get(k)}
    return listen, tls


def observed(attributes: dict, status: dict | None) -> EndpointObserved:
    """Pure: what the endpoint's hosts show (`status`: ingresshosts.merged_status); the URIs name the public name,
    else the first running host's node."""
    if status is None:
        return EndpointObserved(alive=False)
    hosts = [h for h in status.get("hosts") or [] if h.get("running")]
    tls = ((attributes.get("listen") or {}).get("tls") or "off") != "off"
    where = attributes.get("public_name") or (hosts[0]["node_ip"] if hosts else "127.0.0.1")
    base = f"{'https' if tls else 'http'}://{where}:{status['port']}"
    served = ((status.get("listen") or {}).get("tls") or {}).get("sha256") if tls else None
    return EndpointObserved(
        alive=True,
        pid=status.get("pid"),
        port=status.get("port"),
        scoring_uri=f"{base}/score",
        openapi_uri=f"{base}/swagger.json",
        certificate_digest=served,
        hosts_lost=ingresshealth.lost_hosts(status.get("hosts") or []),
    )


class IngressDriver(Unscalable):
    """The endpoint as `ray.ingress_replicas` hosts in the cluster (`runtime` connects and holds the settings)."""

    def __init__(self, runtime):
        self.runtime = runtime

    def _owner(self, ctx: HostedContext) -> str:
        self.runtime.connect()
        return apps.owner_of(ctx.data_dir)

    def _config(self, resource, ctx: HostedContext, keys: dict | None) -> dict:
        a = dict(resource.attributes)
        try:
            listen, tls = listen_settings(a, ctx.data_dir, a["name"])
        except (OSError, ValueError) as e:
            raise DriverError(f"cannot read the TLS files of {resource.address}: {e}") from None
        config = hostconfig.initial(
            a["name"], a["auth_mode"], a.get("port"), ingresshosts.replicas(self.runtime.settings), listen, tls
        )
        return {**config, "keys": keys or secrets.new_secrets()}

    def create(self, resource, prior, ctx: HostedContext):
        """Write the hosts' configuration (keeping the keys, deployments and traffic the cluster has for the
        endpoint, and its port unless another is pinned) and start the hosts."""
        a = dict(resource.attributes)
        owner = self._owner(ctx)
        apps.remember_owner(ctx.data_dir, owner)
        found = hostconfig.read(owner, a["name"]) or {}
        config = self._config(resource, ctx, found.get("keys"))
        kept = {k: found[k] for k in ("deployments", "scaling", "traffic", "mirror_traffic") if found.get(k)}
        port = a.get("port") or found.get("port") or (prior.observed.port if prior and prior.observed else None)
        hostconfig.write(owner, a["name"], {**config, **kept, "port": port})
        ctx.progress(str(resource.address), f"starting {config['replicas']} endpoint host(s) in the cluster")
        ingresshosts.start(owner, a["name"], config["replicas"], START_S)
        ctx.hosts.forget(a["name"])
        return observed(a, ctx.hosts.status(a["name"]))

    def update(self, resource, prior, ctx: HostedContext):
        """The auth mode and the TLS material written into the cluster; every host takes them (no restart). Hosts
        whose actors are gone for good are started again (those Ray is placing again start by themselves)."""
        a = dict(resource.attributes)
        owner = self._owner(ctx)
        found = hostconfig.read(owner, a["name"])
        if found is None:
            return self.create(resource, prior, ctx)
        fresh = self._config(resource, ctx, found.get("keys"))
        hostconfig.write(owner, a["name"], {**found, **{k: fresh[k] for k in ("auth_mode", "listen", "tls")}})
        if len(ingresshosts.handles(owner, a["name"])) < int(found.get("replicas") or 0):
            ctx.progress(str(resource.address), "starting the endpoint hosts whose actors are gone")
            ingresshosts.start(owner, a["name"], int(found["replicas"]), START_S)
        client = ctx.hosts.client(a["name"])
        client.set_auth(a["auth_mode"])
        if fresh.get("tls"):
            ctx.progress(str(resource.address), "the endpoint hosts reload their certificate")
            client.reload_tls()
        ctx.hosts.forget(a["name"])
        return observed(a, ctx.hosts.status(a["name"]))

    def roll(self, resource, prior, ctx: HostedContext):
        raise DriverError(f"an endpoint is recreated, never rolled ({resource.address})")

    def recreate(self, resource, prior, ctx: HostedContext):
        """Stop the hosts and start them again with the same keys."""
        self.delete(resource.address, prior, ctx, keep_identity=True)
        return self.create(resource, prior, ctx)

    def delete(self, address, prior, ctx: HostedContext, keep_identity=False):
        """Stop the hosts (their instances drained) and remove the configuration (keys kept when recreated)."""
        owner = self._owner(ctx)
        ctx.progress(str(address), "stopping the endpoint hosts in the cluster")
        ingresshosts.stop(owner, address.name)
        ctx.hosts.forget(address.name)
        loadshare.forget(owner, address.name)
        if keep_identity:
            found = hostconfig.read(owner, address.name) or {}
            hostconfig.write(owner, address.name, {**found, "deployments": {}, "scaling": {}, "traffic": {}})
        else:
            hostconfig.forget(owner, address.name)

    def read(self, address, prior, ctx: HostedContext):
        status = ctx.hosts.status(address.name)
        if status is None:
            return EndpointObserved(alive=False, port=prior.observed.port if prior.observed else None)
        return observed(prior.attributes, status)
