"""Who the access log names as the client: the peer, or X-Forwarded-For's rightmost untrusted hop when the
peer is a trusted proxy (peers.Peer.client, pure), and the same in a real host's access log."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from hosttools import wait_until
from mlctl.runtime.host.listen import ListenSettings
from mlctl.runtime.host.peers import Peer

PROXIES = ListenSettings.from_dict({"trusted_proxies": ["10.0.0.5", "10.1.0.0/16", "fd00::/8"]})


@pytest.mark.parametrize(
    "peer, forwarded, client",
    [
        (Peer("10.0.0.5", False, True), b"203.0.113.7", "203.0.113.7"),
        (Peer("10.0.0.5", False, True), b"6.6.6.6, 203.0.113.7", "203.0.113.7"),  # the client wrote 6.6.6.6
        (Peer("10.0.0.5", False, True), b"203.0.113.7, 10.1.2.3", "203.0.113.7"),  # a chain of our proxies
        (Peer("10.0.0.5", False, True), b"2001:db8::1,fd00::2", "2001:db8::1"),
        (Peer("10.0.0.5", False, True), b"10.1.2.3", "10.0.0.5"),  # only proxies: the peer
        (Peer("10.0.0.5", False, True), b"not-an-address", "10.0.0.5"),
        (Peer("10.0.0.5", False, True), None, "10.0.0.5"),
        (Peer("198.51.100.9", False, False), b"203.0.113.7", "198.51.100.9"),  # not a proxy: ignored
    ],
)
def test_the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise(peer, forwarded, client):
    assert peer.client(forwarded, PROXIES) == client


def test_a_long_forwarded_header_is_read_from_its_end_only():
    forwarded = b"1.1.1.1, " * 10000 + b"203.0.113.7"
    assert Peer("10.0.0.5", False, True).client(forwarded, PROXIES) == "203.0.113.7"


def test_ipv4_mapped_peers_are_matched_as_ipv4():
    assert ListenSettings.from_dict({"trusted_proxies": ["127.0.0.1"]}).is_trusted_proxy("::ffff:127.0.0.1")


@pytest.mark.parametrize("trusted", [True, False])
def test_the_access_log_names_the_forwarded_client_only_behind_a_trusted_proxy(make_host, trusted):
    host = make_host(listen={"trusted_proxies": ["127.0.0.1"] if trusted else []})
    headers = host.auth(**{"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "x-request-id": f"peers-{trusted}"})
    request = urllib.request.Request(f"{host.url}/score", data=b"{}", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as answer:  # 404: no deployment (the line is written all the same)
        urllib.request.urlopen(request, timeout=20)
    assert answer.value.code == 404
    rid = f"peers-{trusted}"
    line = wait_until(lambda: next((ln for ln in host.log().splitlines() if rid in ln), None), 20, "the access line")
    assert line.endswith(" 203.0.113.7" if trusted else " 127.0.0.1"), line


def test_requests_a_trusted_proxy_on_loopback_forwards_need_a_key_for_metrics(make_host):
    host = make_host(listen={"trusted_proxies": ["127.0.0.1"]})
    for path in ("/", "/metrics"):
        forwarded = urllib.request.Request(f"{host.url}{path}", headers={"X-Forwarded-For": "203.0.113.7"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forwarded, timeout=20)
        assert refused.value.code == 401
        with urllib.request.urlopen(f"{host.url}{path}", timeout=20) as direct:  # the proxy's own: loopback
            assert direct.status == 200
        keyed = urllib.request.Request(f"{host.url}{path}", headers=host.auth(**{"X-Forwarded-For": "203.0.113.7"}))
        with urllib.request.urlopen(keyed, timeout=20) as answer:
            assert answer.status == 200
