"""`tls: self-signed`, for development: a CA of the project's own and a certificate per endpoint, made with the
`cryptography` package and kept in the data folder (`.mlctl/tls/`, folder 0700, keys 0600, never printed).

Clients trust the project's CA (`.mlctl/tls/ca.pem`; `mlctl invoke` does by itself). A certificate is made
again when the names it must carry change (address, public name, host name), when it expires within 30 days,
or when the CA is new; the CA lasts ten years. Not for production: nobody but this project vouches for it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from mlctl.certificates import EXPIRY_WARNING_DAYS, CertificateProblem, facts_of, load_chain
from mlctl.privatefiles import ensure_folder, read_private, write_atomic

FOLDER = "tls"
CA_DAYS = 3650
CERT_DAYS = 397  # what browsers accept for a server certificate


@dataclass(frozen=True)
class Issued:
    """The files of one endpoint's self-signed setup (absolute paths) and its certificate's digest."""

    ca: str
    certificate: str
    key: str
    digest: str


def tls_folder(data_dir) -> Path:
    return Path(data_dir) / FOLDER


def ca_path(data_dir) -> Path:
    """Where the project's CA certificate is (what clients trust)."""
    return tls_folder(data_dir) / "ca.pem"


def trusted_ca(attributes, data_dir) -> str | None:
    """The CA file a client of an endpoint (its attributes) trusts: the project's for self-signed, None for
    the system's store."""
    listen = attributes.get("listen") or {}
    return str(ca_path(data_dir)) if listen.get("tls") == "self-signed" else None


def names_for(address: str, public_name: str | None) -> list[str]:
    """The names a certificate for an endpoint on `address` carries: the public name, the address (or, for
    0.0.0.0 and ::, the machine's host name and loopback), localhost. Reads the host name."""
    names = [public_name] if public_name else []
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        names += [socket.gethostname(), "127.0.0.1", "::1"]
    else:
        names.append(str(ip))
    names.append("localhost")
    return list(dict.fromkeys(names))


def ensure_certificate(data_dir, endpoint: str, names: list[str]) -> Issued:
    """The project's CA and `endpoint`'s certificate for `names`, made when missing, stale or expiring.
    Effects: writes `.mlctl/tls/`."""
    folder = ensure_folder(tls_folder(data_dir), 0o700, what="TLS files", base=data_dir)
    ca_cert, ca_key, fresh = _ensure_ca(folder)
    cert, key = folder / f"{endpoint}.pem", folder / f"{endpoint}-key.pem"
    if fresh or not _still_good(cert, key, names):
        from cryptography.hazmat.primitives.asymmetric import ec

        private = ec.generate_private_key(ec.SECP256R1())
        issued = _sign(private.public_key(), names[0], names, ca_cert, ca_key, CERT_DAYS, is_ca=False)
        write_atomic(key, _key_pem(private), 0o600, "TLS key")
        write_atomic(cert, _cert_pem(issued), 0o644, "TLS certificate")
    return Issued(str(folder / "ca.pem"), str(cert), str(key), facts_of(load_chain(str(cert))).digest)


def _ensure_ca(folder: Path):
    """(CA certificate, CA key, made now?)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    try:
        cert = x509.load_pem_x509_certificate(read_private(cert_path, "TLS CA"))
        key = serialization.load_pem_private_key(read_private(key_path, "TLS CA key"), password=None)
        if _days_left(cert) > EXPIRY_WARNING_DAYS:
            return cert, key, False
    except (OSError, ValueError, TypeError):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    name = f"mlctl development CA {os.path.basename(os.path.dirname(os.path.dirname(folder)))}"[:64]
    cert = _sign(key.public_key(), name, [], None, key, CA_DAYS, is_ca=True)
    write_atomic(key_path, _key_pem(key), 0o600, "TLS CA key")
    write_atomic(cert_path, _cert_pem(cert), 0o644, "TLS CA")
    return cert, key, True


def _still_good(cert: Path, key: Path, names: list[str]) -> bool:
    if not key.is_file() or key.is_symlink():
        return False
    try:
        facts = facts_of(load_chain(str(cert)))
    except CertificateProblem:
        return False
    now = datetime.datetime.now(datetime.timezone.utc)
    return sorted(facts.names) == sorted(names) and facts.days_left(now) > EXPIRY_WARNING_DAYS


def _days_left(cert) -> float:
    return (cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400


def _sign(public_key, common_name: str, names: list[str], issuer, signer, days: int, *, is_ca: bool):
    """A certificate for `public_key` signed by `signer` (issuer: the CA certificate; None: self-signed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _general_name(name: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)
