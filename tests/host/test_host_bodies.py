"""Request bodies before and after authentication (issue 16, item 3): a large body without valid
credentials is refused (401) on its head, never read; all bodies held at once stay within a budget
(503 past it), and what a client that leaves had sent is released at once. Both loop modes."""

from __future__ import annotations

import json

from test_host_http import Wire, assert_refused, http

from hosttools import ROW, sample, scrape, wait_until

MIB = 1 << 20


def padded(size: int) -> bytes:
    """A scoring body of exactly `size` bytes."""
    start = json.dumps({"data": [ROW], "pad": ""}).encode()
    return start[:-2] + b"x" * (size - len(start)) + start[-2:]


def buffered(host) -> float:
    return sample(scrape(host), "mlctl_gateway_buffered_body_bytes")


def test_a_large_body_without_credentials_is_refused_on_its_head(make_host, loop_mode):
    host = make_host()
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    heads = {
        "no key, 60 MiB": {"Content-Length": str(60 * MIB), "x-request-id": "unauth-big"},
        "wrong key, 60 MiB": {"Authorization": "Bearer wrong", "Content-Length": str(60 * MIB)},
        "no key, chunked": {"Transfer-Encoding": "chunked"},
        "no key, 100-continue": {"Content-Length": "10", "Expect": "100-continue"},
    }
    for what, headers in heads.items():
        with Wire(host) as wire:
            wire.send(http("POST", "/score", headers))  # the head alone: the answer comes before any body
            answer = wire.answer()
            assert answer.status == 401, (what, answer)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert_refused(answer, 401, wire)
    wait_until(lambda: "unauth-big POST /score - 401" in host.log(), 10, "the 401's access line")
    with Wire(host) as wire:  # a small body without a key is read, answered 401, the connection kept
        wire.send(http("POST", "/score", {}, b"{}") + http("POST", "/score", host.auth(), padded(200)))
        assert wire.answer().status == 401
        assert wire.answer().status == 200
    assert buffered(host) == 0


def test_bodies_held_at_once_stay_within_the_budget_and_are_released(make_host, loop_mode, monkeypatch):
    monkeypatch.setenv("MLCTL_HOST_BODY_BUDGET_MIB", "4")
    host = make_host()
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    first = padded(3 * MIB)
    with Wire(host) as holder, Wire(host) as late:
        holder.send(http("POST", "/score", host.auth(**{"Content-Length": str(len(first))})) + first[:-1])
        wait_until(lambda: buffered(host) == len(first) - 1, 20, "the first body held")
        late.send(http("POST", "/score", host.auth(**{"Content-Length": str(2 * MIB)})))  # over 4 MiB: at once
        answer = late.answer()
        assert answer.status == 503 and answer.headers["retry-after"] == "1", answer
        assert "MLCTL_HOST_BODY_BUDGET_MIB" in answer.json()["message"]
        assert late.rest() == b""
        with Wire(host) as chunked:  # past the budget while a chunked body arrives: 503 then
            chunked.send(
                http("POST", "/score", host.auth(**{"Transfer-Encoding": "chunked"}))
                + b"%x\r\n" % (2 * MIB)
                + b"x" * (2 * MIB)
            )
            assert_refused(chunked.answer(), 503, chunked)
        holder.send(first[-1:])
        assert holder.answer().status == 200
    wait_until(lambda: buffered(host) == 0, 10, "the bodies released once answered")
    with Wire(host) as leaver:  # a client that leaves mid-body: what it sent is released
        leaver.send(http("POST", "/score", host.auth(**{"Content-Length": str(len(first))})) + first[:-1])
        wait_until(lambda: buffered(host) == len(first) - 1, 20, "the body held")
    wait_until(lambda: buffered(host) == 0, 10, "the body of a client gone released")
    with Wire(host) as wire:
        wire.send(http("POST", "/score", host.auth(), first))
        assert wire.answer().status == 200
    assert buffered(host) == 0
