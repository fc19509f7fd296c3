"""Checking one endpoint's listen settings (`mlctl.listen.Listen`) against its endpoint and its files, and the
endpoint attributes they become (what the plan shows: addresses, the certificate's digest and expiry; never a
key).

Refused (errors, with the file, line and field): beyond loopback without TLS (unless `tls: off` with
`behind_tls_proxy: true`, which is a warning on every plan); beyond loopback with an auth mode other than key
or aml_token; a key file group or others may read; a file reached through a link out of the project; an
expired certificate; a key that is not the certificate's. A certificate expiring within 30 days is a warning.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from typing import Any

from mlctl.boundary import describe, is_inside
from mlctl.certificates import EXPIRY_WARNING_DAYS, CertificateProblem, facts_of, key_matches, load_chain
from mlctl.certificates import loose_permissions, read_pem
from mlctl.errors import Diagnostic, Severity
from mlctl.listen import Listen

OFF_LOOPBACK_AUTH = ("key", "aml_token")


def listen_attributes(
    listen: Listen,
    spec,
    boundary: str,
    diags: list[Diagnostic],
    inputs: dict[str, str],
    now: datetime.datetime | None = None,
) -> dict:
    """The endpoint attributes of `listen` for endpoint `spec` ({} for the default: loopback, plain HTTP, so a
    project without `listen:` plans as before); problems appended to `diags`, the certificate files read
    recorded in `inputs` (a saved plan goes stale when they change). Effects: reads the files."""
    if listen.is_default():
        return {}
    now = now or datetime.datetime.now(datetime.timezone.utc)
    address = f"endpoint {spec.name}"
    _check_exposure(listen, spec, address, diags)
    attrs: dict[str, Any] = {
        "listen": {
            "address": listen.address,
            "tls": listen.tls,
            "mutual_tls": listen.client_ca is not None,
            "behind_tls_proxy": listen.behind_tls_proxy,
            "trusted_proxies": list(listen.trusted_proxies),
        },
        "public_name": listen.public_name,
        "certificate_digest": None,
        "certificate_expires": None,
        "client_ca_digest": None,
        "tls_files": {"certificate": listen.certificate, "key": listen.key, "client_ca": listen.client_ca},
    }
    if listen.tls == "files" and listen.certificate and listen.key:
        facts = _certificate(listen, listen.certificate, listen.key, boundary, address, diags, now)
        if facts is not None:
            attrs["certificate_digest"], attrs["certificate_expires"] = facts.digest, facts.not_after
            inputs[listen.certificate] = facts.digest
    if listen.client_ca:
        attrs["client_ca_digest"] = _client_ca(listen, listen.client_ca, boundary, address, diags)
        if attrs["client_ca_digest"]:
            inputs[listen.client_ca] = attrs["client_ca_digest"]
    return attrs


def _check_exposure(listen: Listen, spec, address: str, diags: list[Diagnostic]) -> None:
    """Beyond loopback: TLS (or a TLS proxy in front, warned of) and keys."""
    proxied = listen.tls == "off" and listen.behind_tls_proxy
    if not listen.is_loopback() and listen.tls == "off" and not listen.behind_tls_proxy:
        diags.append(
            Diagnostic(
                f"endpoint {spec.name} would listen on {listen.address} beyond loopback without TLS",
                "Other machines would send keys and data in clear text. Set 'tls' to certificate and key files "
                "(or 'self-signed' for development); or, when a TLS-terminating load balancer is in front, write "
                "'tls: off' with 'behind_tls_proxy: true' (see docs/tls.md).",
                address=address,
                **listen.at("tls", listen.at("address")),
            )
        )
    if proxied:
        diags.append(
            Diagnostic(
                f"endpoint {spec.name} serves plain HTTP on {listen.address} for a TLS proxy in front of it",
                "Only the proxy may reach this address: keys and data cross the network between them in clear "
                "text. List the proxy's addresses in 'trusted_proxies' for client addresses in the logs.",
                address=address,
                severity=Severity.WARNING,
                **listen.at("behind_tls_proxy"),
            )
        )
    if listen.client_ca and listen.tls == "off":
        diags.append(
            Diagnostic(
                "client_ca (mutual TLS) needs TLS",
                "Set 'tls' to certificate and key files or 'self-signed', or remove 'client_ca'.",
                address=address,
                **listen.at("client_ca"),
            )
        )
    if not listen.is_loopback() and spec.auth_mode not in OFF_LOOPBACK_AUTH:
        diags.append(
            Diagnostic(
                f"endpoint {spec.name} listens beyond loopback ({listen.address}) with auth_mode {spec.auth_mode}",
                "Off loopback every endpoint needs keys: write 'auth_mode: key' (or aml_token) in the endpoint.",
                address=address,
                **spec.where.at("auth_mode"),
            )
        )


def _outside(path: str, boundary: str) -> bool:
    """Is `path` (in the project as written) a link that reaches out of the project?"""
    return is_inside(path, boundary) and not is_inside(os.path.realpath(path), boundary)


def _usable(path: str, what: str, where: dict, boundary: str, address: str, diags: list[Diagnostic]) -> bool:
    """Can `path` be read as the `what` file (no link out of the project; a key private)? Problems appended."""
    if _outside(path, boundary):
        diags.append(
            Diagnostic(
                f"the {what} {path} is a link to {os.path.realpath(path)}, outside {describe(boundary)}",
                f"Put the {what} file itself in the project, or write its real path.",
                address=address,
                **where,
            )
        )
        return False
    if what == "key":
        mode = loose_permissions(path)
        if mode is not None:
            diags.append(
                Diagnostic(
                    f"the key {path} may be read by group or others (mode {mode:04o})",
                    f"A private key must be readable by its owner only, as ssh requires: run `chmod 600 {path}`.",
                    address=address,
                    **where,
                )
            )
            return False
    return True


def _certificate(listen: Listen, cert: str, key: str, boundary: str, address: str, diags: list[Diagnostic], now):
    """The facts of certificate file `cert` when it and `key` are usable and belong together, else None."""
    cert_at, key_at = listen.at("certificate"), listen.at("key")
    ok = _usable(cert, "certificate", cert_at, boundary, address, diags)
    ok = _usable(key, "key", key_at, boundary, address, diags) and ok
    if not ok:
        return None
    try:
        certs = load_chain(cert)
        facts = facts_of(certs)
    except CertificateProblem as e:
        diags.append(
            Diagnostic(str(e), "Give a PEM certificate file (a chain: leaf first).", address=address, **cert_at)
        )
        return None
    try:
        matches = key_matches(key, certs)
    except CertificateProblem as e:
        diags.append(
            Diagnostic(str(e), "Give the certificate's unencrypted PEM private key.", address=address, **key_at)
        )
        return None
    if not matches:
        diags.append(
            Diagnostic(
                f"the key {key} does not belong to the certificate {cert}",
                "Give the private key the certificate was issued for (its public key is the certificate's).",
                address=address,
                **key_at,
            )
        )
    days = facts.days_left(now)
    if days <= 0:
        diags.append(
            Diagnostic(
                f"the certificate {cert} expired on {facts.not_after}",
                "Renew it and replace the file (apply reloads it in place, without a restart).",
                address=address,
                **cert_at,
            )
        )
    elif days <= EXPIRY_WARNING_DAYS:
        diags.append(
            Diagnostic(
                f"the certificate {cert} expires in {int(days)} day(s), on {facts.not_after}",
                "Renew it and replace the file; `mlctl apply` then reloads it in place, without a restart.",
                address=address,
                severity=Severity.WARNING,
                **cert_at,
            )
        )
    return facts if matches and days > 0 else None


def _client_ca(listen: Listen, path: str, boundary: str, address: str, diags: list[Diagnostic]) -> str | None:
    """The digest of the client CA file `path` when it is usable."""
    where = listen.at("client_ca")
    if not _usable(path, "client CA", where, boundary, address, diags):
        return None
    try:
        load_chain(path, "client CA")
        return "sha256:" + hashlib.sha256(read_pem(path, "client CA")).hexdigest()
    except CertificateProblem as e:
        diags.append(
            Diagnostic(
                str(e), "Give the PEM certificate of the CA that signs client certificates.", address=address, **where
            )
        )
        return None
