"""The `listen:` block of the project file: where each endpoint's host listens and how (TLS from files or
self-signed, mutual TLS, a TLS-terminating proxy in front), read with the file's lines.

    listen:                       # every endpoint of the project
      address: 0.0.0.0
      tls: {certificate: tls/cert.pem, key: tls/key.pem}     # or: self-signed, or: off
      client_ca: tls/clients.pem  # optional: mutual TLS
      public_name: scoring.example.com
      endpoints:                  # per endpoint, by name: fields that differ from the block above
        my-endpoint: {address: "::"}

The schema (`schemas/project.schema.json`) checks the shapes; `read_listen` resolves paths against the file's
folder and checks addresses; `mlctl.listenchecks` checks each endpoint's settings and files.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

from mlctl.errors import Diagnostic
from mlctl.schemas.documents import Document

DEFAULT_ADDRESS = "127.0.0.1"
TLS_MODES = ("off", "files", "self-signed")
SETTINGS = ("address", "tls", "client_ca", "behind_tls_proxy", "trusted_proxies", "public_name")


@dataclass(frozen=True)
class Listen:
    """One endpoint's listen settings. `tls`: off, files (`certificate` + `key`) or self-signed; paths are
    absolute (as written, resolved against the project file's folder; links not followed yet). `where`:
    {setting: Diagnostic location keywords} of each setting written in the file."""

    address: str = DEFAULT_ADDRESS
    tls: str = "off"
    certificate: str | None = None
    key: str | None = None
    client_ca: str | None = None
    behind_tls_proxy: bool = False
    trusted_proxies: tuple[str, ...] = ()
    public_name: str | None = None
    where: Mapping[str, dict] = field(default_factory=dict, compare=False, hash=False)

    def is_loopback(self) -> bool:
        """Pure: does the host listen on loopback only (127.0.0.0/8, ::1)?"""
        return ipaddress.ip_address(self.address).is_loopback

    def is_wildcard(self) -> bool:
        """Pure: every address of the machine (0.0.0.0, ::)?"""
        return ipaddress.ip_address(self.address).is_unspecified

    def is_default(self) -> bool:
        """Pure: what every endpoint did before `listen:` existed (loopback, plain HTTP)?"""
        return replace(self, where={}) == Listen()

    def at(self, setting: str, fallback: dict | None = None) -> dict:
        """Diagnostic location keywords of `setting` (else of `fallback`, else none)."""
        return dict(self.where.get(setting) or fallback or {})


@dataclass(frozen=True)
class ListenBlock:
    """The project's listen settings: `common` for every endpoint, `endpoints` the overrides by name (merged
    over `common`), `named` {name: location} of each override."""

    common: Listen = field(default_factory=Listen)
    endpoints: Mapping[str, Listen] = field(default_factory=lambda: MappingProxyType({}))
    named: Mapping[str, dict] = field(default_factory=lambda: MappingProxyType({}))

    def for_endpoint(self, name: str) -> Listen:
        return self.endpoints.get(name, self.common)


def read_listen(doc: Document | None, data: Mapping[str, Any] | None) -> tuple[ListenBlock, list[Diagnostic]]:
    """Pure but for the file's lines: the project's listen block (schema-checked `data`) and the problems
    the schema cannot see (an address that is not one, a proxy that is not a network)."""
    raw = (data or {}).get("listen")
    if doc is None or not isinstance(raw, dict):
        return ListenBlock(), []
    diags: list[Diagnostic] = []
    common = _merged(Listen(), raw, ("listen",), doc, diags)
    endpoints, named = {}, {}
    for name, over in (raw.get("endpoints") or {}).items():
        if isinstance(over, dict):
            endpoints[name] = _merged(common, over, ("listen", "endpoints", name), doc, diags)
            named[name] = doc.at(("listen", "endpoints", name))
    return ListenBlock(common, MappingProxyType(endpoints), MappingProxyType(named)), diags


def _merged(base: Listen, raw: dict, path: tuple, doc: Document, diags: list[Diagnostic]) -> Listen:
    """`base` with the settings `raw` writes (at `path` in `doc`)."""
    where = dict(base.where)
    changes: dict[str, Any] = {}
    folder = os.path.realpath(doc.base)
    for key in SETTINGS:
        if key not in raw:
            continue
        where[key] = doc.at((*path, key))
        value = raw[key]
        if key == "address":
            changes[key] = _address(value, where[key], diags)
        elif key == "tls":
            changes.update(_tls(value, folder, doc, (*path, key), where))
        elif key == "client_ca":
            changes[key] = os.path.normpath(os.path.join(folder, value)) if value else None
        elif key == "trusted_proxies":
            changes[key] = tuple(_network(v, doc.at((*path, key, i)), diags) for i, v in enumerate(value or []))
        else:
            changes[key] = value
    return replace(base, **changes, where=MappingProxyType(where))


def _address(value: str, where: dict, diags: list[Diagnostic]) -> str:
    text = str(value).strip("[]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        diags.append(
            Diagnostic(
                f"listen address {value!r} is not an IP address",
                "Write an IPv4 or IPv6 address of this machine, 0.0.0.0 (every IPv4 address) or :: (every "
                "address); for a name clients use, set 'public_name' too.",
                **where,
            )
        )
        return DEFAULT_ADDRESS


def _network(value: str, where: dict, diags: list[Diagnostic]) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        diags.append(
            Diagnostic(
                f"trusted proxy {value!r} is not an address or network",
                "Write the load balancer's address (10.0.0.5) or network (10.0.0.0/24, fd00::/64).",
                **where,
            )
        )
        return "0.0.0.0/32"


def _tls(value, folder: str, doc: Document, path: tuple, where: dict) -> dict:
    """The tls setting as Listen fields: YAML reads `off` as false."""
    if value is False or value == "off":
        return {"tls": "off", "certificate": None, "key": None}
    if value == "self-signed":
        return {"tls": "self-signed", "certificate": None, "key": None}
    where["certificate"] = doc.at((*path, "certificate"))
    where["key"] = doc.at((*path, "key"))
    return {
        "tls": "files",
        "certificate": os.path.normpath(os.path.join(folder, value["certificate"])),
        "key": os.path.normpath(os.path.join(folder, value["key"])),
    }
