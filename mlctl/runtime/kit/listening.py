"""An endpoint's listen attributes (`mlctl.listenchecks`) as the runtimes use them: the settings the endpoint
host starts with (`--listen`, docs/host.md), the base URL clients use, the CA a client trusts, and the
certificate a running host serves (for drift).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Mapping

from mlctl.certificates import der_digest
from mlctl.runtime.host.listen import url_host
from mlctl.selfsigned import ensure_certificate, names_for

PROBE_TIMEOUT_S = 5.0


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


def client_base(attributes: Mapping, port: int) -> str:
    """The base URL clients use: https when the host serves TLS; the public name, else the address (for
    0.0.0.0 and ::, the machine's host name). Behind a TLS proxy with a public name: https://NAME (the
    proxy's). Reads the host name."""
    listen = attributes.get("listen")
    if not listen:
        return f"http://127.0.0.1:{port}"
    public = attributes.get("public_name")
    if listen["tls"] == "off" and listen.get("behind_tls_proxy") and public:
        return f"https://{public}"
    address = ipaddress.ip_address(listen["address"])
    host = public or (socket.gethostname() if address.is_unspecified else str(address))
    return f"{'http' if listen['tls'] == 'off' else 'https'}://{url_host(host)}:{port}"


def reach_address(attributes: Mapping) -> str:
    """Where this machine reaches the host: its address, loopback for 0.0.0.0 and ::."""
    listen = attributes.get("listen") or {}
    address = ipaddress.ip_address(listen.get("address", "127.0.0.1"))
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)


def served_digest(attributes: Mapping, port: int) -> str | None:
    """The digest of the certificate the host on `port` serves (None: no TLS, or it did not answer). The
    handshake checks nothing: it only reads what the host presents."""
    listen = attributes.get("listen") or {}
    if listen.get("tls", "off") == "off" or not port:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((reach_address(attributes), port), timeout=PROBE_TIMEOUT_S) as raw:
            with context.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return der_digest(der) if der else None
