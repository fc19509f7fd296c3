"""Where and how the gateway listens: the `--listen` settings (address, TLS files, proxies) and the bound socket.

The runtime passes one JSON object (docs/host.md, "Listen settings"); every field is optional:
`{"address": "127.0.0.1", "certificate": null, "key": null, "client_ca": null, "trusted_proxies": [],
"behind_tls_proxy": false}`. Paths are absolute. The project file's checks (TLS required off loopback,
key permissions, expiry) are the plan's; the host checks only what it needs to run safely.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

FIELDS = ("address", "certificate", "key", "client_ca", "trusted_proxies", "behind_tls_proxy")
DEFAULT_ADDRESS = "127.0.0.1"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ListenError(ValueError):
    """Listen settings the host cannot use (the message names the field)."""


@dataclass(frozen=True)
class ListenSettings:
    address: str = DEFAULT_ADDRESS
    certificate: str | None = None
    key: str | None = None
    client_ca: str | None = None
    trusted_proxies: tuple[Network, ...] = ()
    behind_tls_proxy: bool = False

    @classmethod
    def from_dict(cls, raw: dict | None) -> "ListenSettings":
        """Pure: validated settings (ListenError names the first bad field); None or {} gives the defaults."""
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ListenError("listen settings must be a JSON object")
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:
            raise ListenError(f"listen settings: unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
        address = raw.get("address") or DEFAULT_ADDRESS
        try:
            ipaddress.ip_address(address)
        except (ValueError, TypeError):
            raise ListenError(
                f"listen.address must be an IPv4 or IPv6 address (0.0.0.0 and :: for all), got {address!r}"
            ) from None
        paths = {}
        for name in ("certificate", "key", "client_ca"):
            value = raw.get(name)
            if value is not None and (not isinstance(value, str) or not value.startswith("/")):
                raise ListenError(f"listen.{name} must be an absolute path, got {value!r}")
            paths[name] = value
        if bool(paths["certificate"]) != bool(paths["key"]):
            raise ListenError("listen.certificate and listen.key go together: give both or neither")
        if paths["client_ca"] and not paths["certificate"]:
            raise ListenError("listen.client_ca needs TLS: give listen.certificate and listen.key too")
        proxies = raw.get("trusted_proxies") or []
        if not isinstance(proxies, list):
            raise ListenError("listen.trusted_proxies must be a list of addresses or networks (CIDR)")
        try:
            networks = tuple(ipaddress.ip_network(p, strict=False) for p in proxies)
        except (ValueError, TypeError) as e:
            raise ListenError(f"listen.trusted_proxies: {e}") from None
        behind = raw.get("behind_tls_proxy", False)
        if not isinstance(behind, bool):
            raise ListenError(f"listen.behind_tls_proxy must be true or false, got {behind!r}")
        return cls(address, trusted_proxies=networks, behind_tls_proxy=behind, **paths)

    @property
    def tls(self) -> bool:
        return self.certificate is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def is_loopback_only(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback

    def is_trusted_proxy(self, peer: str) -> bool:
        """Is `peer` (an address as the socket gives it) one of trusted_proxies?"""
        if not self.trusted_proxies:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.trusted_proxies)

    def public(self) -> dict:
        """Pure: the settings as JSON (what the run record and `status` show)."""
        return {
            "address": self.address,
            "scheme": self.scheme,
            "certificate": self.certificate,
            "client_ca": self.client_ca,
            "trusted_proxies": [str(n) for n in self.trusted_proxies],
            "behind_tls_proxy": self.behind_tls_proxy,
        }


def url_host(address: str) -> str:
    """Pure: `address` as it goes in a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def bind_port(address: str, port: int | None, recorded: int | None) -> socket.socket:
    """A listening socket on `address`: `port` exactly (OSError if taken), else `recorded` if free, else 0.
    `::` takes IPv4 clients too (dual stack); another IPv6 address only itself."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    candidates = [port] if port else ([recorded, 0] if recorded else [0])
    for i, candidate in enumerate(candidates):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if address == "::" else 1)
        try:
            sock.bind((address, candidate))
        except OSError as e:
            sock.close()
            if i == len(candidates) - 1 or e.errno != errno.EADDRINUSE:
                raise
            continue
        sock.listen(1024)
        sock.setblocking(False)
        return sock
    raise AssertionError("unreachable")
