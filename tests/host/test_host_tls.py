"""TLS on the gateway (issue 27), each on uvloop and asyncio: TLS 1.2+ with ALPN http/1.1 and resumed sessions,
plain HTTP to the TLS port closed cleanly, clients on another "machine" (tests/netns.py) scoring over HTTPS with
the certificate verified by address and by name, refused without trust, without a client certificate under
client_ca, and without a key for `/` and `/metrics`; bad TLS files stop the host with the file named."""

from __future__ import annotations

import json
import socket
import ssl
import warnings

import pytest

from hosttools import ROW
from mlctl.runtime.host.client import HostError
from netcalls import call
from netns import Network
from tlstools import Certificates, digest_of_file, tls_metrics


def tls_host(make_host, certs: Certificates, *names: str, node=None, **listen):
    """A host serving TLS with a new certificate of `certs` for `names` (started in `node` if given)."""
    cert, key = certs.issue(*(names or ("127.0.0.1",)))
    return make_host(node=node, listen={"certificate": cert, "key": key, **listen}), cert


def test_tls_on_loopback_versions_alpn_resumption_and_plain_http(make_host, tmp_path, loop_mode):
    certs = Certificates(tmp_path / "tls")
    host, cert = tls_host(make_host, certs)
    host.assert_loop(loop_mode)
    assert host.url.startswith("https://127.0.0.1:")
    tls = host.client.status()["listen"]["tls"]
    assert tls["sha256"] == digest_of_file(cert) and tls["not_after"].startswith("3000-01-01")
    port = host.info.port

    context = certs.context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as first:
            assert first.selected_alpn_protocol() == "http/1.1"  # never h2: the gateway speaks HTTP/1.1
            first.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert first.recv(100).startswith(b"HTTP/1.1 200")  # (reading also takes the TLS 1.3 tickets)
            session = first.session
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as again:
            assert again.session_reused
            again.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert again.recv(100).startswith(b"HTTP/1.1 200")

    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        pinned = certs.context()
        pinned.minimum_version = pinned.maximum_version = version
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            with pinned.wrap_socket(raw, server_hostname="127.0.0.1") as tls_:
                assert tls_.version() == version.name.replace("v1_", "v1.")
    old = certs.context()
    with warnings.catch_warnings():  # (TLS 1.1 is deprecated: that is the point)
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            old.wrap_socket(raw, server_hostname="127.0.0.1")

    # plain HTTP to the TLS port: closed, no answer, nothing in the log but the count
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not read_to_close(plain).startswith(b"HTTP")  # nothing, or a TLS alert record
    counts = tls_metrics(host.info.port, certs.context())
    assert counts["mlctl_gateway_tls_handshakes_failed_total"] >= 4  # 3 plain + the TLS 1.1 client
    assert host.client.status()["listen"]["tls"]["handshakes_failed"] >= 4
    assert "Traceback" not in host.log()


def read_to_close(sock: socket.socket) -> bytes:
    """What the peer sends until it closes (a reset ends it too)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_plain_http_to_the_tls_port_gets_no_http_byte_and_no_unbounded_buffer(make_host, tmp_path, loop_mode):
    certs = Certificates(tmp_path / "tls")
    host, _ = tls_host(make_host, certs)
    with socket.create_connection(("127.0.0.1", host.info.port), timeout=20) as plain:
        plain.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        try:
            for _ in range(200):  # keep sending: the host must close, not buffer
                plain.sendall(b"x" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            raise AssertionError("the host took 13 MB of plain HTTP on its TLS port without closing")
        assert not read_to_close(plain).startswith(b"HTTP")
    assert host.client.status()["endpoint"] == "ep"


def test_bad_tls_files_stop_the_host_naming_the_file(make_host, tmp_path):
    certs = Certificates(tmp_path / "tls")
    cert, key = certs.issue("127.0.0.1")
    _, other_key = certs.issue("127.0.0.1", stem="other")
    with pytest.raises(HostError, match="does not match the certificate"):
        make_host(listen={"certificate": cert, "key": other_key})
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(HostError, match="holds no PEM certificate"):
        make_host(listen={"certificate": str(tmp_path / "empty.pem"), "key": key})
    with pytest.raises(HostError, match="cannot read the certificate /nonexistent.pem"):
        make_host(listen={"certificate": "/nonexistent.pem", "key": key})
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(open(key, "rb").read(), None)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(HostError, match=f"the key {encrypted} is encrypted"):  # never a passphrase prompt
        make_host(listen={"certificate": cert, "key": str(encrypted)})


@pytest.fixture
def net():
    with Network(["server", "client"]) as network:
        yield network


def test_https_from_another_machine(make_host, tmp_path, net, loop_mode):
    server, client = net["server"], net["client"]
    certs = Certificates(tmp_path / "tls")
    host, _ = tls_host(make_host, certs, server.address, "endpoint.test", node=server, address=server.address)
    host.assert_loop(loop_mode)
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    port, payload = host.info.port, json.dumps({"data": [ROW]})
    score = dict(method="POST", body=payload, headers=host.auth(), scheme="https", cafile=certs.ca_file)

    by_address = call(client, server.address, port, "/score", **score)
    assert by_address["status"] == 200 and json.loads(by_address["body"])["who"] == "blue", by_address
    by_name = call(client, server.address, port, "/score", server_name="endpoint.test", **score)
    assert by_name["status"] == 200, by_name
    wrong_name = call(client, server.address, port, "/score", server_name="other.test", **score)
    assert wrong_name["status"] == 0 and "CERTIFICATE_VERIFY_FAILED" in wrong_name["error"]

    untrusted = Certificates(tmp_path / "other-ca")
    refused = call(client, server.address, port, "/score", **{**score, "cafile": untrusted.ca_file})
    assert refused["status"] == 0 and "CERTIFICATE_VERIFY_FAILED" in refused["error"], refused
    plain = call(client, server.address, port, "/score", method="POST", body=payload, headers=host.auth())
    assert plain["status"] == 0, plain

    # off loopback, / and /metrics need a key too
    tls = dict(scheme="https", cafile=certs.ca_file)
    for path in ("/", "/metrics"):
        assert call(client, server.address, port, path, **tls)["status"] == 401
        assert call(client, server.address, port, path, headers=host.auth(), **tls)["status"] == 200
    assert (
        call(client, server.address, port, "/metrics", headers={"Authorization": "Bearer wrong"}, **tls)["status"]
        == 401
    )


def test_client_ca_refuses_clients_without_its_certificate(make_host, tmp_path, net, loop_mode):
    server, client = net["server"], net["client"]
    certs, clients, strangers = (Certificates(tmp_path / n) for n in ("tls", "clients", "strangers"))
    host, _ = tls_host(make_host, certs, server.address, node=server, address=server.address, client_ca=clients.ca_file)
    port = host.info.port
    tls = dict(scheme="https", cafile=certs.ca_file, headers=host.auth())
    assert call(client, server.address, port, "/", client_cert=clients.client(), **tls)["status"] == 200
    for refused in (
        call(client, server.address, port, "/", **tls),
        call(client, server.address, port, "/", client_cert=strangers.client(), **tls),
    ):
        assert refused["status"] == 0, refused
        assert "ALERT_CERTIFICATE_REQUIRED" in refused["error"] or "ALERT_UNKNOWN_CA" in refused["error"], refused
    assert host.client.status()["listen"]["tls"]["handshakes_failed"] >= 2


def test_http_on_tls_pipelining_continue_and_keep_alive(make_host, tmp_path, loop_mode):
    certs = Certificates(tmp_path / "tls")
    host, _ = tls_host(make_host, certs)
    key = host.key
    with socket.create_connection(("127.0.0.1", host.info.port), timeout=20) as raw:
        with certs.context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")  # one write
            answers = b""
            while answers.count(b"HTTP/1.1 ") < 2 or not answers.endswith(b"}"):
                chunk = tls.recv(65536)
                assert chunk, answers
                answers += chunk
            assert answers.index(b"HTTP/1.1 200") < answers.index(b"HTTP/1.1 404")  # in order
            tls.sendall(
                b"POST /score HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                + f"Authorization: Bearer {key}\r\n\r\n".encode()
            )
            assert tls.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            tls.sendall(b"{}")
            assert tls.recv(65536).startswith(b"HTTP/1.1 404")  # no deployment yet: the gateway answered
