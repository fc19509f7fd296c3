"""The gateway's TLS: the server context made from the listen settings' files, swapped on a reload order.

The context is the standard library's server defaults (`ssl.create_default_context(Purpose.CLIENT_AUTH)`),
TLS 1.2 at least, ALPN `http/1.1`, session tickets on (OpenSSL's default); with `client_ca`, a client
certificate signed by it is required. Each new connection takes the context current when it arrives
(protocol.py), so a reload changes what new handshakes present and leaves open connections alone.
`start_tls_now` upgrades an admitted connection (protocol.py admits it before its handshake).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import ssl

from mlctl.certificates import CertificateProblem, read_pem

log = logging.getLogger("mlctl.host")


class TlsError(Exception):
    """TLS files the host cannot serve with; the message names the file and what is wrong."""


def _read_pem(path: str, what: str) -> bytes:
    """A PEM file's bytes: a regular file of at most 1 MiB, read as the plan reads it
    (`mlctl.certificates.read_pem`); TlsError otherwise."""
    try:
        return read_pem(path, what)
    except CertificateProblem as e:
        raise TlsError(str(e)) from None


def describe(pem: bytes, path: str) -> dict:
    """Pure: {sha256 ("sha256:<hex>" of the leaf certificate's DER, what clients see), not_after (UTC, ISO
    8601), subject} of the first certificate in `pem` (read from `path`, named in the TlsError)."""
    from cryptography import x509

    try:
        leaf = x509.load_pem_x509_certificates(pem)[0]
    except (ValueError, IndexError):
        raise TlsError(f"the certificate {path} holds no PEM certificate ('-----BEGIN CERTIFICATE-----')") from None
    from cryptography.hazmat.primitives.serialization import Encoding

    return {
        "sha256": "sha256:" + hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "subject": leaf.subject.rfc4514_string(),
    }


# OpenSSL's reasons for refusing a client's certificate (none sent, or not signed by client_ca)
CLIENT_REFUSED = frozenset({"PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_VERIFY_FAILED"})


class AlertingObject(ssl.SSLObject):
    """An SSLObject (the context's `sslobject_class` under client_ca) whose refusal of a client certificate
    reaches the client as an alert. asyncio's and uvloop's TLS protocols close the connection at once on a
    handshake error, dropping the alert OpenSSL has just written; this one first says "want read", so the
    protocol sends what is pending (the alert), and raises the refusal at its next call (the client's next
    bytes, its close, or the handshake timeout)."""

    refused: ssl.SSLError | None = None

    def do_handshake(self) -> None:
        if self.refused is not None:
            raise self.refused
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as e:
            if e.reason not in CLIENT_REFUSED:
                raise
            self.refused = e
            raise ssl.SSLWantReadError("the client's certificate is refused: the alert goes out first") from None


def _no_password() -> bytes:
    raise TlsError("is encrypted (a passphrase is needed): give the host an unencrypted key file")


def server_context(certificate: str, key: str, client_ca: str | None) -> tuple[ssl.SSLContext, dict]:
    """A server context serving `certificate` (a chain may follow the leaf) with `key`, and what the
    certificate is (`describe`); TlsError names the file when one is unreadable, not PEM, or the key does
    not match."""
    pem = _read_pem(certificate, "certificate")
    facts = describe(pem, certificate)
    _read_pem(key, "key")  # the checks (regular, bounded) before OpenSSL opens it
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certificate, key, password=_no_password)
    except TlsError as e:
        raise TlsError(f"the key {key} {e}") from None
    except ssl.SSLError as e:
        reason = "does not match the certificate" if "mismatch" in str(e) else f"cannot be used ({e.reason or e})"
        raise TlsError(f"the key {key} {reason} {certificate}") from None
    except OSError as e:
        raise TlsError(f"cannot read {certificate} or {key}: {e.strerror}") from None
    if client_ca:
        _read_pem(client_ca, "client CA")
        try:
            context.load_verify_locations(cafile=client_ca)
        except (ssl.SSLError, OSError) as e:
            raise TlsError(f"the client CA {client_ca} holds no usable PEM certificate ({e})") from None
        context.verify_mode = ssl.CERT_REQUIRED
        context.sslobject_class = AlertingObject
    return context, facts


class Tls:
    """The current server context of a listen setting's files, and its reload (one order at a time: the
    event loop runs it in one go)."""

    def __init__(self, certificate: str, key: str, client_ca: str | None):
        self.certificate, self.key, self.client_ca = certificate, key, client_ca
        self.context, self.facts = server_context(certificate, key, client_ca)
        self.loaded = _now()
        self.reloads = 0
        self.handshakes_failed = 0  # counted by protocol.py (plain HTTP, no client certificate, timeouts, ...)

    def reload(self) -> dict:
        """Read the files again and serve them to new handshakes; on TlsError the old context stays."""
        context, facts = server_context(self.certificate, self.key, self.client_ca)
        changed = facts["sha256"] != self.facts["sha256"]
        self.context, self.facts, self.loaded = context, facts, _now()
        self.reloads += 1
        log.info(
            "TLS files reloaded: serving %s (%s, until %s)%s",
            facts["sha256"],
            facts["subject"],
            facts["not_after"],
            "" if changed else " (the same certificate as before)",
        )
        return self.status()

    def status(self) -> dict:
        """What `status` shows: the served certificate's digest, expiry and subject, when it was loaded."""
        return {
            **self.facts,
            "client_ca": self.client_ca,
            "loaded": self.loaded,
            "reloads": self.reloads,
            "handshakes_failed": self.handshakes_failed,
        }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def start_tls_now(loop, transport, protocol, context: ssl.SSLContext, timeout_s: float, done) -> None:
    """Upgrade a server connection to TLS: `loop.start_tls` with its first step run now, so its TLS protocol
    is under `transport` before a byte is read (uvloop starts reading when connection_made returns; a task
    would start a loop turn later, and the ClientHello would reach `protocol` as plain bytes). The handshake
    and the close_notify exchange at the end each have `timeout_s` (a client that never answers close_notify
    would otherwise hold its connection for asyncio's default 30 s). `done(tls transport, None)` or
    `done(None, exception)` when the handshake ends."""
    start = loop.start_tls(
        transport,
        protocol,
        context,
        server_side=True,
        ssl_handshake_timeout=timeout_s,
        ssl_shutdown_timeout=timeout_s,
    )
    step_now(start, done)


def step_now(coroutine, done) -> None:
    """Run `coroutine` as a task would, but its first step now (3.11 has no eager tasks); `done(result,
    None)` or `done(None, exception)` when it ends. For a coroutine that awaits futures only (start_tls)."""

    def step(_=None) -> None:
        try:
            future = coroutine.send(None)
        except StopIteration as stop:
            done(stop.value, None)
            return
        except BaseException as e:  # handed on: the caller decides
            done(None, e)
            return
        future._asyncio_future_blocking = False
        future.add_done_callback(step)

    step()
