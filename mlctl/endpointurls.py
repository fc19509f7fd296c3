"""Where clients reach an endpoint, from its listen attributes (`mlctl.listenchecks`): the base URL they use
(scoring_uri and swagger_uri in show, list and apply), and the address this machine connects to.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping


def url_host(name: str) -> str:
    """Pure: `name` as it goes in a URL (an IPv6 address in brackets)."""
    return f"[{name}]" if ":" in name else name


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
    """Pure: where this machine reaches the endpoint's host: its address, loopback for 0.0.0.0 and ::."""
    listen = attributes.get("listen") or {}
    address = ipaddress.ip_address(listen.get("address", "127.0.0.1"))
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)
