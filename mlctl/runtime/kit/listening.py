"""An endpoint's listen attributes (`mlctl.listenchecks`) as the endpoint host's listen settings (`--listen`,
docs/host.md), a self-signed certificate made for it when needed. The URLs clients use are `mlctl.endpointurls`'.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlctl.selfsigned import ensure_certificate, names_for


def host_listen(attributes: Mapping, data_dir, endpoint: str) -> dict | None:
    """The endpoint host's listen settings for an endpoint's attributes (None: loopback, plain HTTP). For
    `self-signed`, makes the project's CA and the endpoint's certificate when needed (mlctl.selfsigned)."""
    listen = attributes.get("listen")
    if not listen:
        return None
    files = attributes.get("tls_files") or {}
    out = {
        "address": listen["address"],
        "trusted_proxies": list(listen.get("trusted_proxies") or []),
        "behind_tls_proxy": bool(listen.get("behind_tls_proxy")),
        "client_ca": files.get("client_ca"),
    }
    if listen["tls"] == "files":
        out.update(certificate=files["certificate"], key=files["key"])
    elif listen["tls"] == "self-signed":
        issued = ensure_certificate(data_dir, endpoint, names_for(listen["address"], attributes.get("public_name")))
        out.update(certificate=issued.certificate, key=issued.key)
    return out
