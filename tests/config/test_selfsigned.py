"""`tls: self-signed` (mlctl.selfsigned): the project's CA and an endpoint's certificate, made in the data folder
with private modes, kept while they fit, made again when the names change or the CA is new; a link where
they go is refused."""

from __future__ import annotations

import os
import ssl

import pytest

from mlctl.certificates import facts_of, key_matches, load_chain
from mlctl.errors import MlctlError
from mlctl.selfsigned import ensure_certificate, names_for, trusted_ca


def test_made_once_private_and_verifiable(tmp_path):
    data = tmp_path / ".mlctl"
    issued = ensure_certificate(data, "ep", names_for("10.0.0.7", "scoring.test"))
    assert oct(os.stat(data / "tls").st_mode & 0o777) == "0o700"
    assert oct(os.stat(issued.key).st_mode & 0o777) == "0o600"
    assert oct(os.stat(data / "tls" / "ca-key.pem").st_mode & 0o777) == "0o600"
    certs = load_chain(issued.certificate)
    assert sorted(facts_of(certs).names) == ["10.0.0.7", "localhost", "scoring.test"]
    assert key_matches(issued.key, certs)
    # a client trusting the project's CA accepts it for the public name (OpenSSL's own verification)
    client = ssl.create_default_context(cafile=issued.ca)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(issued.certificate, issued.key)
    a, b = ssl.MemoryBIO(), ssl.MemoryBIO()
    c, s = client.wrap_bio(a, b, server_hostname="scoring.test"), server.wrap_bio(b, a, server_side=True)
    for _ in range(10):
        for end in (c, s):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
    assert c.getpeercert()["subject"]  # verified: getpeercert() is empty before a completed handshake
    assert ensure_certificate(data, "ep", names_for("10.0.0.7", "scoring.test")) == issued  # kept as it is


def test_made_again_when_the_names_change_with_the_same_ca(tmp_path):
    data = tmp_path / ".mlctl"
    first = ensure_certificate(data, "ep", names_for("0.0.0.0", None))
    ca = (data / "tls" / "ca.pem").read_bytes()
    second = ensure_certificate(data, "ep", names_for("0.0.0.0", "new.test"))
    assert second.digest != first.digest and (data / "tls" / "ca.pem").read_bytes() == ca
    assert "new.test" in facts_of(load_chain(second.certificate)).names


def test_a_link_in_the_data_folder_is_refused(tmp_path):
    data = tmp_path / ".mlctl"
    data.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", data / "tls")
    with pytest.raises(MlctlError, match="symbolic link"):
        ensure_certificate(data, "ep", ["localhost"])
    assert os.listdir(tmp_path / "elsewhere") == []


def test_clients_trust_the_project_ca_only_for_self_signed(tmp_path):
    assert trusted_ca({"listen": {"tls": "self-signed"}}, tmp_path) == str(tmp_path / "tls" / "ca.pem")
    assert trusted_ca({"listen": {"tls": "files"}}, tmp_path) is None
    assert trusted_ca({}, tmp_path) is None
