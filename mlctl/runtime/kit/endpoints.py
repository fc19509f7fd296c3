"""The kit's endpoint driver: one endpoint host process per endpoint, started with the project's listen
settings (`mlctl.runtime.kit.listening`), its keys kept in the secrets file, a new certificate reloaded in
place; it reports the URIs clients use and the certificate the host serves. Re-exported by
`mlctl.runtime.kit.drivers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from mlctl.endpointurls import client_base
from mlctl.observed import EndpointObserved
from mlctl.resources import Address
from mlctl.runtime.contract import DriverError, Unscalable
from mlctl.runtime.host import client as hostclient
from mlctl.runtime.host import secrets
from mlctl.runtime.kit import listening
from mlctl.runtime.kit.hostview import HostedContext


def _endpoint_observed(info, attributes, status: dict | None = None) -> EndpointObserved:
    """What a running host of an endpoint with these attributes shows: its URIs as clients use them, and the
    certificate it serves (its `status`, asked when not given)."""
    base = client_base(attributes, info.port)
    served = None
    if (attributes.get("listen") or {}).get("tls", "off") != "off":
        if status is None:
            try:
                status = hostclient.HostClient(info).status()
            except hostclient.HostError:
                status = {}
        served = ((status.get("listen") or {}).get("tls") or {}).get("sha256")
    return EndpointObserved(
        alive=True,
        pid=info.pid,
        port=info.port,
        scoring_uri=f"{base}/score",
        openapi_uri=f"{base}/swagger.json",
        certificate_digest=served,
    )


def _listens_as(info, wanted: dict | None) -> bool:
    """Does the running host listen on the address and with the TLS the endpoint now wants?"""
    have = getattr(info, "listen", None) or {}
    want = wanted or {}
    return have.get("address", "127.0.0.1") == want.get("address", "127.0.0.1") and have.get("scheme", "http") == (
        "https" if want.get("certificate") else "http"
    )


def _check_same_files(address, info, wanted: dict) -> None:
    """A reload re-reads the files the host started with: DriverError when the endpoint now names others."""
    have = getattr(info, "listen", None) or {}
    moved = [k for k in ("certificate", "client_ca") if k in have and have.get(k) != wanted.get(k)]
    if moved:
        raise DriverError(
            f"the endpoint host of {address} reads its {' and '.join(moved)} from "
            + ", ".join(str(have.get(k)) for k in moved)
            + ", and the configuration now names other files; a reload cannot move it",
            f"Replace the endpoint (its instances restart): `mlctl plan --replace {address} --out tls.plan` and "
            "`mlctl apply tls.plan`; or put the new files at the old paths and apply again (reloaded in place).",
        )


class EndpointDriver(Unscalable):
    """One endpoint host process per endpoint; two keys generated at create, kept in the secrets file.
    `after_delete(address, ctx)`: what else goes once the host is stopped."""

    def __init__(self, after_delete: Callable[[Address, HostedContext], None] | None = None):
        self.after_delete = after_delete

    def create(self, resource, prior, ctx: HostedContext):
        """Start the host (keeping the keys on file and, unless a port is pinned, the recorded port);
        a host of this endpoint already running (the state was lost) is adopted."""
        a = dict(resource.attributes)
        name = a["name"]
        secrets.ensure_keys(ctx.data_dir, name)
        wanted = self._listen(resource, ctx)
        info = hostclient.find_host(ctx.data_dir, name)
        if info is not None and not _listens_as(info, wanted):
            ctx.progress(str(resource.address), "stopping the endpoint host that listens elsewhere")
            hostclient.HostClient(info).shutdown()
            info = None
        if info is not None:
            hostclient.HostClient(info).set_auth(a["auth_mode"])
            hostclient.HostClient(info).reload_keys()
            if wanted and wanted.get("certificate"):
                hostclient.HostClient(info).reload_tls()
        else:
            info = self._start(resource, prior, ctx, wanted)
        ctx.hosts.forget(name)
        return _endpoint_observed(info, a)

    @staticmethod
    def _listen(resource, ctx: HostedContext) -> dict | None:
        """The host's listen settings (a self-signed certificate made now when needed); DriverError if not."""
        try:
            return listening.host_listen(resource.attributes, ctx.data_dir, resource.address.name)
        except (OSError, ValueError) as e:
            raise DriverError(f"cannot prepare the TLS files of {resource.address}: {e}") from None

    def _start(self, resource, prior, ctx: HostedContext, listen: dict | None):
        """Start the host on the pinned port, else the port it had (when still free), else any."""
        a = dict(resource.attributes)
        recorded = prior.observed.port if prior else None
        tries = [a["port"]] if a.get("port") else ([recorded, None] if recorded else [None])
        for i, port in enumerate(tries):
            ctx.progress(str(resource.address), "starting the endpoint host" + (f" on port {port}" if port else ""))
            try:
                return hostclient.start_host(
                    ctx.data_dir,
                    a["name"],
                    auth_mode=a["auth_mode"],
                    port=port,
                    listen=listen,
                )
            except hostclient.HostError as e:
                if i + 1 < len(tries):
                    ctx.progress(str(resource.address), f"port {port} is taken; the host takes another one")
                    continue
                raise DriverError(
                    f"the endpoint host of {a['name']!r} did not start: {e}",
                    f"See {hostclient.host_log(ctx.data_dir, a['name'])}.",
                    e.log_tail,
                ) from None
        raise AssertionError("unreachable: the last try raises")

    def update(self, resource, prior, ctx: HostedContext):
        """The auth mode, and the certificate files read again (a new certificate: the host reloads it in place,
        open connections kept, no restart)."""
        a = dict(resource.attributes)
        client = ctx.hosts.client(a["name"])
        client.set_auth(a["auth_mode"])
        wanted = self._listen(resource, ctx)
        if wanted and wanted.get("certificate"):
            _check_same_files(resource.address, hostclient.find_host(ctx.data_dir, a["name"]), wanted)
            ctx.progress(str(resource.address), "the endpoint host reloads its certificate")
            try:
                client.reload_tls()
            except hostclient.HostError as e:
                raise DriverError(
                    f"the endpoint host of {a['name']!r} did not take the new certificate: {e.message}",
                    "It keeps serving the previous one. Fix the files and run `mlctl apply` again.",
                ) from None
        return _endpoint_observed(hostclient.find_host(ctx.data_dir, a["name"]), a)

    def roll(self, resource, prior, ctx: HostedContext) -> NoReturn:
        raise DriverError(f"an endpoint is recreated, never rolled ({resource.address})")

    def recreate(self, resource, prior, ctx: HostedContext):
        """Stop the host (and its instances) and start a new one on the same port with the same keys."""
        self.delete(resource.address, prior, ctx, keep_identity=True)
        return self.create(resource, prior, ctx)

    def delete(self, address, prior, ctx: HostedContext, keep_identity=False):
        """Stop the host and its instances; the keys go too unless the endpoint is recreated."""
        name = address.name
        info = hostclient.find_host(ctx.data_dir, name)
        if info is not None:
            ctx.progress(str(address), "stopping the endpoint host and its instances")
            hostclient.HostClient(info).shutdown()
        ctx.hosts.forget(name)
        if not keep_identity:
            secrets.secrets_path(ctx.data_dir, name).unlink(missing_ok=True)
        if self.after_delete is not None:
            self.after_delete(address, ctx)

    def read(self, address, prior, ctx: HostedContext):
        info = ctx.hosts.info(address.name)
        status = ctx.hosts.status(address.name)
        if info is None or status is None:
            return EndpointObserved(alive=False, port=prior.observed.port)
        return _endpoint_observed(info, prior.attributes, status)
