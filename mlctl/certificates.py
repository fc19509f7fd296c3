"""TLS certificate and key files as mlctl reads them: what a certificate says (digest, expiry, names), whether a
key is private enough (as ssh asks) and matches its certificate.

Nothing here prints or returns a key's bytes: a key is read only to compare its public half with the
certificate's. Files are read with a size bound (a PEM file is a few kilobytes; a repository may name a huge
one, or a FIFO, to hang or exhaust `plan`).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
from dataclasses import dataclass

MAX_PEM_BYTES = 1 << 20  # a chain of a dozen certificates is ~20 KB
EXPIRY_WARNING_DAYS = 30


class CertificateProblem(ValueError):
    """A certificate or key file mlctl cannot use; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class CertificateFacts:
    """What a certificate file says. `digest`: "sha256:<hex>" of the leaf certificate's DER (what a client
    sees in the handshake); `not_after`: its expiry (UTC, ISO 8601); `names`: its DNS and IP subject
    alternative names; `chain`: how many certificates the file holds."""

    digest: str
    not_after: str
    names: tuple[str, ...]
    chain: int

    def expires(self) -> datetime.datetime:
        return datetime.datetime.fromisoformat(self.not_after)

    def days_left(self, now: datetime.datetime) -> float:
        """Pure: days from `now` to the expiry (negative once expired)."""
        return (self.expires() - now).total_seconds() / 86400


def read_pem(path: str, what: str) -> bytes:
    """The bytes of a PEM file (a regular file, at most MAX_PEM_BYTES); CertificateProblem otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise CertificateProblem(f"cannot read the {what} {path}: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CertificateProblem(f"the {what} {path} is not a regular file")
        if info.st_size > MAX_PEM_BYTES:
            raise CertificateProblem(f"the {what} {path} is {info.st_size} bytes; a PEM file is a few kilobytes")
        data = os.read(fd, MAX_PEM_BYTES + 1)
    except OSError as e:
        raise CertificateProblem(f"cannot read the {what} {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    return data


def load_chain(path: str, what: str = "certificate"):
    """The x509 certificates of a PEM file, leaf first; CertificateProblem when there is none or it is not PEM."""
    from cryptography import x509

    data = read_pem(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise CertificateProblem(f"the {what} {path} holds no PEM certificate ('-----BEGIN CERTIFICATE-----')")
    return certs


def facts_of(certs) -> CertificateFacts:
    """Pure: the facts of a chain (leaf first) loaded by `load_chain`."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    leaf = certs[0]
    names: list[str] = []
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    return CertificateFacts(
        "sha256:" + hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
        leaf.not_valid_after_utc.isoformat(),
        tuple(names),
        len(certs),
    )


def der_digest(der: bytes) -> str:
    """Pure: the digest of a certificate as a client receives it (DER), comparable with CertificateFacts.digest."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def loose_permissions(path: str) -> int | None:
    """The mode bits of a key file that give group or others any access (None when there are none);
    the file's own mode, so a key reached through a link is judged by the file the link reaches."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & 0o077 else None


def key_matches(key_path: str, certs) -> bool:
    """Does the private key in `key_path` belong to the leaf certificate? CertificateProblem when the file
    holds no unencrypted PEM private key (the message never quotes the file)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = read_pem(key_path, "key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertificateProblem(
            f"the key {key_path} is encrypted with a passphrase; the endpoint host reads keys without one"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateProblem(f"the key {key_path} holds no PEM private key") from None
    finally:
        del data
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, fmt)
    theirs = certs[0].public_key().public_bytes(serialization.Encoding.DER, fmt)
    return mine == theirs
