"""The project file's `listen:` block (issue 27, "What users write"): what validate refuses (file, line,
field, what to do), what it warns of, and the endpoint attributes a certificate becomes (digest and expiry in
the plan, never the key). Each test makes its own CA and certificates (trustme); files are real."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys

import pytest
import trustme

from loader_helpers import write_tree
from mlctl.projectpaths import Project
from mlctl.schemas.load import load_config

ENDPOINT = "kind: endpoint\nname: ep-one\nauth_mode: {auth}\ntraffic:\n  blue: 100\n"
BLUE = (
    "kind: deployment\nname: blue\nendpoint_name: ep-one\nmodel:\n  path: model\n"
    "code_configuration:\n  code: code\n  scoring_script: score.py\n"
)
NOW = datetime.datetime.now(datetime.timezone.utc)


def project(tmp_path, listen: str, auth: str = "key"):
    root = tmp_path / "proj"
    write_tree(
        root,
        {
            "endpoint.yml": ENDPOINT.format(auth=auth),
            "blue.yml": BLUE,
            "model/w.txt": "w",
            "code/score.py": "def init(): pass\ndef run(d): return d\n",
            "mlctl.yaml": listen,
        },
    )
    (root / ".git").mkdir()  # the boundary: links out of it are refused
    return root


def certificate(root, *, days: float = 365, names=("10.213.0.10",), ca=None, key_mode=0o600, folder="tls"):
    """A certificate and key issued by `ca` (a new trustme CA by default) under root/folder."""
    ca = ca or trustme.CA()
    cert = ca.issue_cert(
        *names, not_before=NOW - datetime.timedelta(days=400), not_after=NOW + datetime.timedelta(days=days)
    )
    (root / folder).mkdir(exist_ok=True)
    cert.cert_chain_pems[0].write_to_path(str(root / folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(root / folder / "key.pem"))
    os.chmod(root / folder / "key.pem", key_mode)
    return ca, cert


FILES = "listen:\n  address: 0.0.0.0\n  tls:\n    certificate: tls/cert.pem\n    key: tls/key.pem\n"


def load(root):
    return load_config(Project.at(root))


def errors(config):
    return [d for d in config.diagnostics if d.severity == "error"]


def warnings(config):
    return [d for d in config.diagnostics if d.severity == "warning"]


def test_without_a_listen_block_an_endpoint_has_no_listen_attributes(tmp_path):
    root = project(tmp_path, "runtime: local\n")
    config = load(root)
    assert not config.has_errors(), config.diagnostics
    attrs = config.resource("endpoint.ep-one").attributes
    assert "listen" not in attrs and "certificate_digest" not in attrs  # a project without listen plans as before


def test_certificate_files_become_digest_and_expiry_and_the_key_stays_out(tmp_path):
    root = project(tmp_path, FILES + "  public_name: scoring.test\n")
    _, cert = certificate(root)
    config = load(root)
    assert not config.has_errors(), config.diagnostics
    attrs = config.resource("endpoint.ep-one").attributes
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    import hashlib

    leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    assert attrs["certificate_digest"] == "sha256:" + hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    assert attrs["certificate_expires"] == leaf.not_valid_after_utc.isoformat()
    assert attrs["listen"] == {
        "address": "0.0.0.0",
        "tls": "files",
        "mutual_tls": False,
        "behind_tls_proxy": False,
        "trusted_proxies": [],
    }
    assert attrs["public_name"] == "scoring.test"
    key_text = (root / "tls" / "key.pem").read_text()
    assert key_text.splitlines()[1] not in repr(attrs)
    assert str(root / "tls" / "cert.pem") in config.inputs  # a saved plan goes stale when the certificate changes
    assert str(root / "tls" / "key.pem") not in config.inputs


def test_beyond_loopback_without_tls_is_refused_with_file_line_and_field(tmp_path):
    root = project(tmp_path, "listen:\n  address: 0.0.0.0\n")
    (err,) = errors(load(root))
    assert "beyond loopback without TLS" in err.summary
    assert (err.file, err.line, err.field) == ("mlctl.yaml", 2, "listen.address")
    assert "behind_tls_proxy" in err.detail


def test_tls_off_behind_a_proxy_is_a_warning_on_every_load(tmp_path):
    root = project(
        tmp_path, "listen:\n  address: '::'\n  tls: off\n  behind_tls_proxy: true\n  trusted_proxies: [fd00::/64]\n"
    )
    for _ in range(2):
        config = load(root)
        assert not config.has_errors(), config.diagnostics
        (warn,) = warnings(config)
        assert "plain HTTP" in warn.summary and (warn.line, warn.field) == (4, "listen.behind_tls_proxy")


def test_off_loopback_needs_keys(tmp_path):
    root = project(tmp_path, "listen:\n  address: 0.0.0.0\n  tls: self-signed\n", auth="aad_token")
    (err,) = errors(load(root))
    assert "auth_mode aad_token" in err.summary and (err.file, err.field) == ("endpoint.yml", "auth_mode")


def test_a_key_readable_by_others_is_refused_naming_the_chmod(tmp_path):
    root = project(tmp_path, FILES)
    certificate(root, key_mode=0o640)
    (err,) = errors(load(root))
    key = root / "tls" / "key.pem"
    assert f"chmod 600 {key}" in err.detail and (err.line, err.field) == (5, "listen.tls.key")


def test_a_key_through_a_link_out_of_the_project_is_refused(tmp_path):
    root = project(tmp_path, FILES)
    certificate(tmp_path, folder="outside")
    (root / "tls").mkdir()
    (root / "tls" / "cert.pem").write_bytes((tmp_path / "outside" / "cert.pem").read_bytes())
    os.symlink(tmp_path / "outside" / "key.pem", root / "tls" / "key.pem")
    (err,) = errors(load(root))
    assert "is a link to" in err.summary and "outside" in err.summary and err.field == "listen.tls.key"


def test_an_expired_certificate_is_an_error_and_one_expiring_soon_a_warning(tmp_path):
    root = project(tmp_path, FILES)
    certificate(root, days=-1)
    (err,) = errors(load(root))
    assert "expired on" in err.summary and err.field == "listen.tls.certificate"
    certificate(root, days=10)
    config = load(root)
    assert not config.has_errors(), config.diagnostics
    (warn,) = warnings(config)
    assert "expires in 9 day(s)" in warn.summary or "expires in 10 day(s)" in warn.summary


def test_a_key_of_another_certificate_is_an_error(tmp_path):
    root = project(tmp_path, FILES)
    certificate(root)
    other = trustme.CA().issue_cert("10.213.0.10")
    other.private_key_pem.write_to_path(str(root / "tls" / "key.pem"))
    (err,) = errors(load(root))
    assert "does not belong to the certificate" in err.summary and err.field == "listen.tls.key"


def test_not_pem_and_missing_files_are_errors_not_tracebacks(tmp_path):
    root = project(tmp_path, FILES + "  client_ca: tls/missing.pem\n")
    certificate(root)
    (root / "tls" / "cert.pem").write_text("not a certificate\n")
    found = errors(load(root))
    assert {d.field for d in found} == {"listen.tls.certificate", "listen.client_ca"}


def test_per_endpoint_override_and_unknown_names(tmp_path):
    root = project(
        tmp_path,
        "listen:\n  address: 127.0.0.1\n  endpoints:\n    ep-one: {address: '::', tls: self-signed}\n"
        "    ep-onw: {address: '::1'}\n",
    )
    config = load(root)
    (err,) = errors(config)
    assert "ep-onw" in err.summary and "ep-one" in err.detail and err.line == 5
    (root / "mlctl.yaml").write_text("listen:\n  endpoints:\n    ep-one: {address: '::', tls: self-signed}\n")
    attrs = load(root).resource("endpoint.ep-one").attributes
    assert attrs["listen"]["address"] == "::" and attrs["listen"]["tls"] == "self-signed"


@pytest.mark.parametrize(
    "text, field",
    [
        ("listen:\n  address: example.com\n", "listen.address"),
        ("listen:\n  tls: on\n", "listen.tls"),
        ("listen:\n  tls: {certificate: a.pem}\n", "listen.tls"),
        ("listen:\n  port: 8443\n", "listen.port"),
        ("listen:\n  trusted_proxies: [10.0.0.0/33]\n", "listen.trusted_proxies[0]"),
    ],
)
def test_bad_settings_are_refused_by_the_cli_with_the_field(tmp_path, text, field):
    root = project(tmp_path, text)
    done = subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(root), "validate"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"field '{field}'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "listen, public_name, expected",
    [
        (None, None, "http://127.0.0.1:8443"),
        ({"address": "10.0.0.7", "tls": "files"}, None, "https://10.0.0.7:8443"),
        ({"address": "fd00::7", "tls": "self-signed"}, None, "https://[fd00::7]:8443"),
        ({"address": "0.0.0.0", "tls": "files"}, None, f"https://{socket.gethostname()}:8443"),
        ({"address": "::", "tls": "files"}, "scoring.test", "https://scoring.test:8443"),
        ({"address": "0.0.0.0", "tls": "off", "behind_tls_proxy": True}, "lb.test", "https://lb.test"),
        ({"address": "10.0.0.7", "tls": "off", "behind_tls_proxy": True}, None, "http://10.0.0.7:8443"),
    ],
)
def test_the_url_clients_use(listen, public_name, expected):
    from mlctl.endpointurls import client_base

    attrs = {"listen": listen, "public_name": public_name} if listen else {}
    assert client_base(attrs, 8443) == expected


def test_a_running_host_elsewhere_or_on_other_files_is_not_reloaded():
    from mlctl.runtime.contract import DriverError
    from mlctl.runtime.host.client import HostInfo
    from mlctl.runtime.kit.endpoints import _check_same_files, _listens_as

    running = HostInfo(1, 8443, "/a.sock", {"address": "0.0.0.0", "scheme": "https", "certificate": "/p/c.pem"})
    assert _listens_as(running, {"address": "0.0.0.0", "certificate": "/p/c.pem"})
    assert not _listens_as(running, {"address": "::", "certificate": "/p/c.pem"})
    assert not _listens_as(running, None)  # the default (127.0.0.1, plain HTTP)
    _check_same_files("endpoint.e", running, {"certificate": "/p/c.pem", "client_ca": None})
    with pytest.raises(DriverError, match="reads its certificate from /p/c.pem") as e:
        _check_same_files("endpoint.e", running, {"certificate": "/p/new.pem"})
    assert "--replace endpoint.e" in e.value.detail


def test_a_fifo_or_a_device_is_refused_without_being_read(tmp_path):
    root = project(
        tmp_path, "listen:\n  tls:\n    certificate: /dev/zero\n    key: tls/key.pem\n  client_ca: ca.fifo\n"
    )
    certificate(root)
    os.mkfifo(root / "ca.fifo")  # nobody writes it: reading would hang
    found = {d.field: d.summary for d in errors(load(root))}
    assert "not a regular file" in found["listen.tls.certificate"]
    assert "not a regular file" in found["listen.client_ca"]
