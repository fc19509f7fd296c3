"""Refusals of the public port (405/400/505/431/417/413) are the documented JSON answers, never a 500,
with uvloop and without (issue 16, item 2: without uvloop every refusal was a 500 with a traceback)."""

from __future__ import annotations

from test_host_http import BIG, Wire, assert_refused, http

from hosttools import body


def test_every_refusal_is_its_documented_status_in_both_loop_modes(make_host, loop_mode):
    host = make_host()  # no deployment: these never get past the parser
    host.assert_loop(loop_mode)
    cases = [
        ("CONNECT", http("CONNECT", "127.0.0.1:443", host.auth()), 405),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", http("GET", "/", {"host": "other"}), 400),
        ("HTTP/2.0", http("GET", "/", version="2.0"), 505),
        ("HTTP/0.9", http("GET", "/", version="0.9"), 505),
        ("70 KB header", http("GET", "/", {"X-Huge": "a" * 70_000}), 431),
        ("Expect: foo", http("POST", "/score", host.auth(Expect="foo"), body()), 417),
        ("body over the limit", http("POST", "/score", host.auth(**{"Content-Length": str(BIG)})), 413),
    ]
    for what, raw, status in cases:
        with Wire(host) as wire:
            wire.send(raw)
            answer = wire.answer()
            assert answer.status == status, (what, answer)
            assert_refused(answer, status, wire)
    assert "Traceback" not in host.log()
    with Wire(host) as wire:
        wire.send(http("GET", "/"))
        assert wire.answer().status == 200
