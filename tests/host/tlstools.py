"""Test certificates (trustme: a CA per test) written as the files a host serves, and TLS client helpers."""

from __future__ import annotations

import hashlib
import socket
import ssl
from pathlib import Path

import trustme


class Certificates:
    """A test CA and the files of certificates it issues, in `folder` (cert.pem, key.pem, ca.pem, ...)."""

    def __init__(self, folder: Path, ca: trustme.CA | None = None):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca = ca or trustme.CA()
        self.ca_file = str(folder / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

    def issue(self, *names: str, stem: str = "server") -> tuple[str, str]:
        """(certificate path, key path) of a new certificate for `names` (host names or addresses)."""
        leaf = self.ca.issue_cert(*names)
        cert, key = self.folder / f"{stem}.pem", self.folder / f"{stem}-key.pem"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        key.chmod(0o600)
        return str(cert), str(key)

    def client(self, stem: str = "client") -> str:
        """A client certificate file (key and chain in one PEM, as ssl's load_cert_chain takes it)."""
        leaf = self.ca.issue_cert("client@example.test")
        path = self.folder / f"{stem}-both.pem"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
        return str(path)

    def context(self) -> ssl.SSLContext:
        """A client context trusting this CA only."""
        return ssl.create_default_context(cafile=self.ca_file)


def digest_of_file(cert_path: str) -> str:
    """ "sha256:<hex>" of the first certificate in a PEM file (what the host's status reports)."""
    pem = Path(cert_path).read_text()
    first = pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


def served_digest(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> str:
    """ "sha256:<hex>" of the certificate a new handshake with the host gets."""
    with socket.create_connection((host, port), timeout=20) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return digest_of_peer(tls)


def tls_metrics(port: int, context: ssl.SSLContext) -> dict:
    """The host's /metrics over TLS from loopback (no key needed there), as {sample name: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return {s.name: s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples}


def digest_of_peer(tls: ssl.SSLSocket) -> str:
    """ "sha256:<hex>" of the certificate an open TLS connection got."""
    return "sha256:" + hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
