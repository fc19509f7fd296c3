"""Generated requests against a real endpoint host, with uvloop and without (issue 16): methods, targets,
versions, headers, bodies, chunking and garbage bytes. Whatever arrives, the answer is a documented
status (never a 500 from the gateway itself) or a closed connection, the host stays up, and its memory
stays under a ceiling and does not grow across repeated floods. Bounded: a fixed number of examples,
every socket read bounded."""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_host_http import Wire

from hosttools import Host, body

EXAMPLES = 150
DOCUMENTED = {100, 200, 400, 401, 404, 405, 408, 413, 417, 424, 429, 431, 503, 505}  # docs/host.md
RSS_CEILING_MB = 400  # the host's resident memory, whatever it was sent
GROWTH_MB = 40  # a second identical flood may not grow it by more than this


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def fuzzed(request, tmp_path_factory, code_dir, model_dir):
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCTL_HOST_LOOP", request.param)
        host = Host(tmp_path_factory.mktemp("fuzz") / "data", "ep", code_dir, model_dir)
    try:
        host.assert_loop(request.param)
        host.create("blue")
        host.client.set_traffic({"blue": 100})
        yield host
    finally:
        host.stop()


TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=12)
VALUE = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").decode("latin-1")),
)


@st.composite
def raw_requests(draw) -> tuple[bytes, bool, bytes]:
    """(a generated request's head or garbage, whether it carries the right key, its body)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=300)), False, b""
    method = draw(
        st.sampled_from(
            ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE", "PRI", "G\x00T"]
        )
        | TOKEN
    )
    target = draw(
        st.sampled_from(
            [
                "/score",
                "/",
                "/metrics",
                "/swagger.json",
                "/score?x=1",
                "*",
                "http://127.0.0.1/score",
                "/nowhere",
                "//",
                "/%00",
            ]
        )
    )
    version = draw(st.sampled_from(["1.1", "1.1", "1.0", "2.0", "0.9", "1.2", "x"]))
    authorized = draw(st.booleans())
    headers = [("Host", "127.0.0.1")] if draw(st.integers(0, 5)) else []
    if draw(st.booleans()):
        headers.append(
            (
                "Authorization",
                "Bearer {key}"
                if authorized
                else draw(st.sampled_from(["Bearer wrong", "Bearer \u00e9\u00e8", "Basic x", ""])),
            )
        )
    payload = draw(st.one_of(st.just(body()), st.binary(max_size=2000), st.just(b"")))
    framing = draw(st.sampled_from(["length", "chunked", "none", "wrong-length", "both"]))
    if framing in ("length", "both"):
        headers.append(("Content-Length", str(len(payload))))
    if framing == "wrong-length":
        headers.append(
            ("Content-Length", draw(st.sampled_from(["-1", "abc", "99999999999", "+5", str(len(payload) + 7)])))
        )
    if framing in ("chunked", "both"):
        headers.append(("Transfer-Encoding", "chunked"))
        size = draw(st.integers(1, 700))
        payload = (
            b"".join(
                b"%x\r\n%s\r\n" % (len(payload[i : i + size]), payload[i : i + size])
                for i in range(0, len(payload), size)
            )
            + b"0\r\n\r\n"
        )
    for _ in range(draw(st.integers(0, 4))):
        headers.append(
            draw(
                st.sampled_from(
                    [
                        ("Expect", "100-continue"),
                        ("Expect", "nope"),
                        ("Connection", "close"),
                        ("Connection", "keep-alive, X"),
                        ("Upgrade", "h2c"),
                        ("azureml-model-deployment", "blue"),
                        ("azureml-model-deployment", "nope"),
                        ("x-request-id", "r\u00e9"),
                    ]
                )
                | st.tuples(TOKEN, VALUE)
            )
        )
    head = f"{method} {target} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1", "replace"), authorized and any(k == "Authorization" for k, _ in headers), payload


def exchange(host: Host, raw: bytes) -> list[int]:
    """Send `raw`, half-close, read until the host closes: the statuses of the answers it sent."""
    with Wire(host) as wire:  # every read bounded (test_host_http.RECV_S)
        try:
            wire.send(raw)
            wire.sock.shutdown(socket.SHUT_WR)
        except OSError:  # refused before all was sent: what came back still counts
            pass
        data = wire.rest()
    return [
        int(line.split(b" ")[1])
        for line in data.split(b"\r\n")
        if line.startswith(b"HTTP/1.1 ") and line[9:12].isdigit()
    ]


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def flood(host: Host, requests: list) -> None:
    for head, _, payload in requests:
        statuses = exchange(host, head.replace(b"{key}", host.key.encode()) + payload)
        assert set(statuses) <= DOCUMENTED, (statuses, head[:300])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.lists(raw_requests(), min_size=1, max_size=3))
def check_requests(host: Host, requests) -> None:
    flood(host, requests)


def test_generated_requests_get_documented_answers_and_the_host_holds(fuzzed):
    host = fuzzed
    check_requests(host)
    assert host.client.status()["deployments"]["blue"]["ready_instances"] == 1
    assert "Traceback" not in host.log()
    assert "failed to answer" not in host.log() and "request parsing failed" not in host.log()
    assert rss_mb(host.info.pid) < RSS_CEILING_MB


def test_repeated_floods_of_large_unauthorized_bodies_do_not_grow_the_host(fuzzed):
    host = fuzzed
    big = (
        b"POST /score HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer wrong\r\nContent-Length: %d\r\n\r\n" % (60 << 20)
    ) + b"x" * (1 << 20)
    small = [
        (
            b"POST /score HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {key}\r\nContent-Length: %d\r\n\r\n"
            % len(body()),
            True,
            body(),
        )
    ] * 20
    sizes = []
    for _ in range(3):
        for _ in range(20):
            assert exchange(host, big) == [401]
        flood(host, small)
        sizes.append(rss_mb(host.info.pid))
    assert max(sizes) < RSS_CEILING_MB, sizes
    assert sizes[2] - sizes[1] < GROWTH_MB, sizes
