"""TLS under load (issue 27), on uvloop and asyncio: a certificate rotated (files replaced, `reload_tls`) while
keep-alive and new-connection clients score, with 0 failed requests and open connections kept; a bad reload
keeps the old certificate; the same rotation with the clients on another "machine" (tests/netns.py); a flood of
half-open handshakes neither keeps good clients out nor lasts; nor do clients that never answer close_notify."""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hosttools import send, wait_until
from mlctl.runtime.host.client import HostError
from netcalls import finish_load, start_load
from netns import Network
from tlstools import Certificates, digest_of_file, digest_of_peer, served_digest, tls_metrics

ROTATIONS = 3


def get(tls: socket.socket, key: str) -> bytes:
    """One keep-alive GET / on an open TLS connection; the status line."""
    tls.sendall(f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
    answer = b""
    while b"Healthy" not in answer:
        chunk = tls.recv(4096)
        assert chunk, f"connection closed after {answer!r}"
        answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_certificate_rotated_under_load_with_no_failed_request(make_host, tmp_path, loop_mode):
    certs = Certificates(tmp_path / "tls")
    cert, key = certs.issue("127.0.0.1")
    host = make_host(listen={"certificate": cert, "key": key})
    host.assert_loop(loop_mode)
    host.create("blue", count=2, concurrent=4)
    host.client.set_traffic({"blue": 100})
    context, port = certs.context(), host.info.port
    first = digest_of_file(cert)

    held = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname="127.0.0.1")
    assert get(held, host.key) == b"HTTP/1.1 200 OK"

    served: list[str] = []
    rotated = threading.Event()

    def rotate() -> None:
        try:
            for i in range(ROTATIONS):
                time.sleep(0.5)  # (pacing only: clients send meanwhile)
                new_cert, new_key = certs.issue("127.0.0.1", stem=f"next{i}")
                os.replace(new_cert, cert)
                os.replace(new_key, key)
                served.append(host.client.reload_tls()["sha256"])
                assert served[-1] == digest_of_file(cert)
            time.sleep(0.5)
        finally:
            rotated.set()

    url = f"{host.url}/score"
    with ThreadPoolExecutor(1) as pool:
        fresh = pool.submit(
            send,
            url,
            3000,
            concurrency=4,
            headers=host.auth(),
            ssl=context,
            fresh=True,
            during=lambda: rotated.wait(120),
        )
        kept = send(url, 20000, concurrency=8, headers=host.auth(), ssl=context, during=rotate, limit_s=120)
        fresh_results = fresh.result()
    assert len(served) == ROTATIONS and len(set(served + [first])) == ROTATIONS + 1
    for name, results in (("keep-alive", kept), ("new connections", fresh_results)):
        failed = [r for r in results if r[0] != 200]
        assert results and not failed, f"{name}: {len(failed)} of {len(results)} failed: {failed[:3]}"
    # the connection opened before the rotation still works, with the certificate it began with
    assert get(held, host.key) == b"HTTP/1.1 200 OK"
    assert digest_of_peer(held) == first
    held.close()
    assert served_digest(port, context) == served[-1]

    # a reload with files that do not go together keeps the certificate served
    _, other_key = certs.issue("127.0.0.1", stem="stranger")
    os.replace(other_key, key)
    with pytest.raises(HostError) as refused:
        host.client.reload_tls()
    assert refused.value.kind == "tls_refused"
    assert f"the key {key} does not match the certificate {cert}" in refused.value.message
    assert f"keeps serving {served[-1]}" in refused.value.message
    assert host.client.status()["listen"]["tls"]["sha256"] == served[-1]
    assert served_digest(port, context) == served[-1]


def test_reload_without_tls_is_refused(make_host):
    host = make_host()
    with pytest.raises(HostError) as refused:
        host.client.reload_tls()
    assert refused.value.kind == "no_tls" and "serves no TLS" in refused.value.message


FLOOD = 240  # connections that open and never finish a handshake (the host's limit here: 64)


def test_a_flood_of_half_open_handshakes_neither_keeps_good_clients_out_nor_lasts(
    make_host, tmp_path, loop_mode, monkeypatch
):
    monkeypatch.setenv("MLCTL_HOST_MAX_CONNECTIONS", "64")
    monkeypatch.setenv("MLCTL_HOST_HEAD_TIMEOUT_S", "3")
    certs = Certificates(tmp_path / "tls")
    cert, key = certs.issue("127.0.0.1")
    host = make_host(listen={"certificate": cert, "key": key})
    host.assert_loop(loop_mode)
    context, port = certs.context(), host.info.port
    flood = []
    try:
        for i in range(FLOOD):
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            if i % 2:
                s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello that never ends
            flood.append(s)
        # good clients: a new connection (and handshake) each, with credentials: all served
        for _ in range(20):
            with context.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname="127.0.0.1"
            ) as good:
                assert get(good, host.key) == b"HTTP/1.1 200 OK"

        # every flood connection is closed by the host: turned away, or its handshake timed out
        def closed(s: socket.socket) -> bool:
            s.setblocking(False)
            try:
                return s.recv(100) == b""
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True

        wait_until(lambda: all(closed(s) for s in flood), 60, "the host closed every half-open handshake")
    finally:
        for s in flood:
            s.close()
    metrics = tls_metrics(port, context)
    turned_away = metrics["mlctl_gateway_connections_refused_total"]  # the oldest, to make room for new ones
    timed_out = host.client.status()["listen"]["tls"]["handshakes_failed"]  # (turned away in a handshake too)
    assert turned_away > 0 and timed_out > 0 and turned_away + timed_out >= FLOOD
    assert "Traceback" not in host.log()


def test_a_client_that_never_answers_close_notify_does_not_keep_its_slot(make_host, tmp_path, loop_mode, monkeypatch):
    monkeypatch.setenv("MLCTL_HOST_HEAD_TIMEOUT_S", "2")  # the close_notify exchange has as long (asyncio's: 30 s)
    certs = Certificates(tmp_path / "tls")
    cert, key = certs.issue("127.0.0.1")
    host = make_host(listen={"certificate": cert, "key": key})
    context, port = certs.context(), host.info.port
    silent = []
    try:
        for _ in range(5):
            tls = context.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname="127.0.0.1"
            )
            tls.sendall(
                f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {host.key}\r\nConnection: close\r\n\r\n".encode()
            )
            answer = b""
            while chunk := tls.recv(4096):  # to the host's close_notify, never answered; the socket stays open
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            silent.append(tls)
        # only the scrape's own connection remains, well before asyncio's 30 s
        wait_until(lambda: tls_metrics(port, context)["mlctl_gateway_connections"] == 1, 15, "the slots are freed")
    finally:
        for tls in silent:
            tls.close()


def test_certificate_rotated_under_load_from_another_machine(make_host, tmp_path, loop_mode):
    with Network(["server", "client"]) as net:
        server, client = net["server"], net["client"]
        certs = Certificates(tmp_path / "tls")
        cert, key = certs.issue(server.address)
        host = make_host(node=server, listen={"address": server.address, "certificate": cert, "key": key})
        host.assert_loop(loop_mode)
        host.create("blue", count=2, concurrent=4)
        host.client.set_traffic({"blue": 100})
        done = tmp_path / "rotated"
        load = dict(url=f"{host.url}/score", headers=host.auth(), cafile=certs.ca_file, done=str(done))
        kept = start_load(client, fresh=False, total=20000, concurrency=8, **load)
        fresh = start_load(client, fresh=True, total=3000, concurrency=4, **load)
        try:
            wait_until(lambda: host.log().count("POST /score") > 20, 60, "the clients are scoring")
            served = [digest_of_file(cert)]
            for i in range(ROTATIONS):
                new_cert, new_key = certs.issue(server.address, stem=f"next{i}")
                os.replace(new_cert, cert)
                os.replace(new_key, key)
                served.append(host.client.reload_tls()["sha256"])
                count = host.log().count("POST /score")
                wait_until(lambda: host.log().count("POST /score") > count + 20, 60, "more requests answered")
        finally:
            done.touch()
            results = {"keep-alive": finish_load(kept), "new connections": finish_load(fresh)}
    assert len(set(served)) == ROTATIONS + 1
    for name, answers in results.items():
        failed = [a for a in answers if a[0] != 200]
        assert len(answers) > 20 and not failed, f"{name}: {len(failed)} of {len(answers)} failed: {failed[:3]}"
