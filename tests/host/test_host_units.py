"""Pure parts of the host with literal expectations: routing, traffic rules, tokens, specs, answer parsing."""

from __future__ import annotations

import collections

import pytest

from mlctl.runtime.host import secrets
from mlctl.runtime.host.metrics import Metrics
from mlctl.runtime.host.routing import MirrorSampler, WeightedPicker, has_live_traffic, traffic_errors
from mlctl.runtime.host.spec import PROBE_DEFAULTS, REQUEST_DEFAULTS, ServingSpec, SpecError


def test_weighted_picker_is_exact_and_smooth():
    picker = WeightedPicker({"blue": 70, "green": 30, "idle": 0})
    picks = [picker.pick() for _ in range(10)]
    assert collections.Counter(picks) == {"blue": 7, "green": 3}
    assert picks == ["blue", "green", "blue", "blue", "blue", "green", "blue", "blue", "green", "blue"]
    assert WeightedPicker({"a": 0}).pick() is None and not WeightedPicker({})


def test_mirror_sampler_copies_exactly_the_percentage():
    sampler = MirrorSampler({"green": 10})
    hits = [sampler.sample() for _ in range(1000)]
    assert hits.count("green") == 100 and hits.count(None) == 900
    assert hits[:10] == [None] * 9 + ["green"]
    assert MirrorSampler({}).sample() is None


def test_traffic_rules():
    names = {"blue", "green"}
    assert traffic_errors({"blue": 100}, {"green": 50}, names) == []
    assert traffic_errors({}, {}, names) == []
    assert traffic_errors({"blue": 90}, {}, names) == ["traffic must total 0 or 100, got 90"]
    assert traffic_errors({"red": 100}, {}, names) == [
        "traffic names deployment 'red', which this endpoint does not have"
    ]
    assert traffic_errors({"blue": 100}, {"green": 51}, names) == [
        "mirror_traffic['green'] is 51; at most 50 is allowed"
    ]
    assert traffic_errors({"blue": 50, "green": 50}, {"green": 10}, names) == [
        "deployment 'green' cannot get live and mirror traffic at once"
    ]
    assert traffic_errors({"blue": 100}, {"blue": 5, "green": 5}, names) == [
        "mirror_traffic may name at most one deployment, got ['blue', 'green']",
        "deployment 'blue' cannot get live and mirror traffic at once",
    ]
    assert traffic_errors({"blue": True}, {}, names) == ["traffic['blue'] must be an integer percent 0..100, got True"]
    assert has_live_traffic("green", {"blue": 100}, {"green": 10})
    assert not has_live_traffic("green", {"blue": 100, "green": 0}, {})


def test_tokens(tmp_path):
    secrets.ensure_keys(tmp_path, "ep")
    keys = secrets.read_keys(tmp_path, "ep")
    token, expiry = secrets.issue_token(tmp_path, "ep", ttl_s=60)
    assert secrets.is_valid_token(keys["token_key"], "ep", token)
    assert not secrets.is_valid_token(keys["token_key"], "ep", token, now=expiry + 1)
    assert not secrets.is_valid_token(keys["token_key"], "other", token)
    assert not secrets.is_valid_token("another key", "ep", token)
    assert not secrets.is_valid_token(keys["token_key"], "ep", "mlt1.e30.x")
    assert not secrets.is_valid_token(keys["token_key"], "ep", keys["primary"])
    secrets.ensure_keys(tmp_path, "ep")  # keeps existing keys
    assert secrets.read_keys(tmp_path, "ep") == keys
    secrets.regenerate_key(tmp_path, "ep", "secondary")
    after = secrets.read_keys(tmp_path, "ep")
    assert after["primary"] == keys["primary"] and after["secondary"] != keys["secondary"]
    with pytest.raises(ValueError):
        secrets.regenerate_key(tmp_path, "ep", "tertiary")


def test_spec_defaults_and_errors():
    base = {
        "name": "blue",
        "digest": "sha256:1",
        "python": "/usr/bin/python3",
        "code_dir": "/c",
        "scoring_script": "score.py",
        "model_dir": "/m",
    }
    spec = ServingSpec.from_dict(base)
    assert (spec.instance_count, spec.max_concurrent, spec.timeout_s) == (1, 1, 5.0)
    assert spec.instance_timeout_ms == 5500 and spec.readiness_budget_s == 310
    assert ServingSpec.from_dict({**base, "request_settings": {"request_timeout_ms": 1000}}).instance_timeout_ms == 1250
    for bad, words in (
        ({"instance_count": 0}, "instance_count"),
        ({"python": ""}, "python"),
        ({"environment_variables": {"A": 1}}, "environment_variables"),
        ({"request_settings": {"request_timeout_ms": 0}}, "request_timeout_ms"),
        ({"liveness_probe": {"period": -1}}, "liveness_probe.period"),
        ({"launcher": "docker"}, "unknown launcher 'docker': this endpoint host has container, process, serve"),
        ({"launch": ["image"]}, "deployment spec field 'launch' must be a JSON object"),
    ):
        with pytest.raises(SpecError) as e:
            ServingSpec.from_dict({**base, **bad})
        assert words in str(e.value)


def test_spec_defaults_are_the_deployment_schemas():
    assert PROBE_DEFAULTS == {
        "initial_delay": 10,
        "period": 10,
        "timeout": 2,
        "success_threshold": 1,
        "failure_threshold": 30,
    }
    assert REQUEST_DEFAULTS == {
        "request_timeout_ms": 5000,
        "max_concurrent_requests_per_instance": 1,
        "max_queue_wait_ms": 500,
    }
    spec = ServingSpec.from_dict(
        {
            "name": "blue",
            "digest": "sha256:1",
            "python": "/usr/bin/python3",
            "code_dir": "/c",
            "scoring_script": "score.py",
            "model_dir": "/m",
        }
    )
    assert (spec.launcher, spec.liveness_probe, spec.request_settings) == ("process", PROBE_DEFAULTS, REQUEST_DEFAULTS)


def _answer_of(tmp_path, raw: bytes):
    """What the pooled client makes of `raw`, sent by a real peer on a unix socket as the answer to one
    request: (status, reason, passed header lines, body), or the ConnectionFailed it raised."""
    import asyncio

    from mlctl.runtime.host.upstream import ConnectionFailed, Pool

    path = str(tmp_path / "answer.sock")

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_unix_server(handle, path)
        try:
            _, _, answer = await Pool(f"unix:{path}").request("GET", "/", b"", b"")
            return await asyncio.wait_for(answer, 10)
        except ConnectionFailed as e:
            return e
        finally:
            server.close()

    return asyncio.run(main())


def test_answer_heads_and_chunked_bodies_are_read_by_llhttp(tmp_path):
    assert _answer_of(
        tmp_path, b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 12\r\nX-A: b\r\n\r\n" + b"x" * 12
    ) == (
        500,
        "Internal Server Error",
        b"X-A: b\r\n",
        b"x" * 12,
    )
    # the instance's own x-request-id and framing headers are not passed on (the gateway writes its own)
    assert _answer_of(
        tmp_path, b"HTTP/1.0 204 No Content\r\nx-request-id: 1\r\nServer: x\r\nX-Ms-Request-Id: 1\r\n\r\n"
    ) == (
        204,
        "No Content",
        b"X-Ms-Request-Id: 1\r\n",
        b"",
    )
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert _answer_of(tmp_path, chunked)[3] == b"hello world"
    for bad in (
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",  # not a chunk size
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",  # cut short
    ):
        failure = _answer_of(tmp_path, bad)
        assert type(failure).__name__ == "ConnectionFailed" and failure.answered, (bad, failure)


def test_metrics_text_parses_and_counts():
    from prometheus_client.parser import text_string_to_metric_families

    m = Metrics()
    m.observe("blue", 200, 0.003)
    m.observe("blue", 200, 0.2)
    m.observe('we"ird', 424, 1.0)
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(m.render({"blue": 2}, {"blue": 1}))
        for s in f.samples
    }
    assert values[("mlctl_requests_total", (("deployment", "blue"), ("status", "200")))] == 2
    assert values[("mlctl_requests_total", (("deployment", 'we"ird'), ("status", "424")))] == 1
    assert values[("mlctl_request_duration_seconds_bucket", (("deployment", "blue"), ("le", "0.005")))] == 1
    assert values[("mlctl_request_duration_seconds_bucket", (("deployment", "blue"), ("le", "0.25")))] == 2
    assert values[("mlctl_instances_ready", (("deployment", "blue"),))] == 2
    assert values[("mlctl_requests_in_flight", (("deployment", "blue"),))] == 1


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_pooled_client_reads_interim_chunked_and_eof_answers_on_one_connection(tmp_path, transport):
    import asyncio

    from mlctl.runtime.host.upstream import ConnectionFailed, Pool

    path = str(tmp_path / "s.sock")
    connections = []

    async def handle(reader, writer):  # a raw HTTP/1.1 peer answering in three framings
        connections.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-eof")
        await writer.drain()
        writer.close()

    async def main():
        if transport == "unix":  # an address as a launcher gives it
            server = await asyncio.start_unix_server(handle, path)
            pool = Pool(f"unix:{path}")
        else:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            pool = Pool(f"tcp:127.0.0.1:{server.sockets[0].getsockname()[1]}")
        answers = []
        for body in (b"hi", b"", b""):
            _, _, answer = await pool.request("POST", "/score", b"x-request-id: 1\r\n", body)
            answers.append(await asyncio.wait_for(answer, 10))
        server.close()
        await server.wait_closed()
        try:
            await pool.request("GET", "/", b"", b"")
        except ConnectionFailed as e:
            return answers, e.answered
        return answers, None

    answers, answered = asyncio.run(main())
    assert [(a[0], a[3]) for a in answers] == [(200, b"ok"), (201, b"abc"), (200, b"until-eof")]
    assert len(connections) == 1  # kept alive until the peer said close
    assert answered is False  # nothing listens any more: a failure before any answer (retryable)


def test_pooled_connection_idle_too_long_is_not_reused(tmp_path, monkeypatch):
    """A kept-alive connection idle longer than the instance may keep it is closed, not sent on (a
    request sent as the instance closes it would be lost: it is never sent again)."""
    import asyncio

    from mlctl.runtime.host import upstream

    path = str(tmp_path / "s.sock")
    accepted = []

    async def handle(reader, writer):  # answers every request on the connection it came on
        accepted.append(writer)
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async def main():
        server = await asyncio.start_unix_server(handle, path)
        pool = upstream.Pool(f"unix:{path}")
        for _ in range(2):  # the second request reuses the first connection
            _, _, answer = await pool.request("GET", "/", b"", b"")
            await asyncio.wait_for(answer, 10)
        assert len(accepted) == 1
        monkeypatch.setattr(upstream, "REUSE_IDLE_S", 0.0)
        await asyncio.sleep(0.01)
        old = pool.idle[-1]
        _, _, answer = await pool.request("GET", "/", b"", b"")
        assert (await asyncio.wait_for(answer, 10))[0] == 200
        assert len(accepted) == 2 and old.closed
        pool.close()
        server.close()

    asyncio.run(main())
