"""The host's listen settings (--listen): it binds the address asked (IPv4, IPv6, 0.0.0.0, ::) and is scored
from another network namespace; bad settings stop it with a clear message; status and the run record say
where it listens."""

from __future__ import annotations

import json

import pytest

from hosttools import ROW
from mlctl.runtime.host.client import HostError
from mlctl.runtime.host.listen import ListenError, ListenSettings
from netcalls import call
from netns import Network


@pytest.mark.parametrize("bind", ["address", "address6", "0.0.0.0", "::"])
def test_a_client_in_another_namespace_reaches_the_address_bound(make_host, bind):
    with Network(["server", "client"]) as net:
        server, client = net["server"], net["client"]
        address = getattr(server, bind) if bind.startswith("address") else bind
        host = make_host(node=server, listen={"address": address, "behind_tls_proxy": True})
        assert host.client.status()["listen"]["address"] == address
        # whatever was bound, the client calls the server's own address (each family where it is bound)
        targets = {"address": [server.address], "address6": [server.address6], "0.0.0.0": [server.address]}
        for target in targets.get(bind, [server.address, server.address6]):
            answer = call(client, target, host.info.port, "/score", method="POST", body="{}", headers=host.auth())
            assert answer["status"] == 404 and "no deployment with traffic" in answer["body"], answer
        if bind == "address":
            host.create("blue")
            host.client.set_traffic({"blue": 100})
            payload = json.dumps({"data": [ROW]})
            answer = call(
                client, server.address, host.info.port, "/score", method="POST", body=payload, headers=host.auth()
            )
            assert answer["status"] == 200 and json.loads(answer["body"])["who"] == "blue"
        if bind == "address6":  # an IPv6 address alone does not take IPv4 clients
            assert call(client, server.address, host.info.port)["status"] == 0


def test_the_default_is_loopback_and_the_record_says_so(make_host):
    host = make_host()
    assert host.url.startswith("http://127.0.0.1:")
    assert host.client.status()["listen"] == {
        "address": "127.0.0.1",
        "scheme": "http",
        "certificate": None,
        "client_ca": None,
        "trusted_proxies": [],
        "behind_tls_proxy": False,
        "tls": None,
    }


@pytest.mark.parametrize(
    "listen, message",
    [
        ({"address": "example.com"}, "listen.address must be an IPv4 or IPv6 address"),
        ({"certificate": "/c.pem"}, "listen.certificate and listen.key go together"),
        ({"certificate": "c.pem", "key": "/k.pem"}, "listen.certificate must be an absolute path"),
        ({"trusted_proxies": ["10.0.0.0/33"]}, "listen.trusted_proxies"),
        ({"adress": "::"}, "unknown field(s) adress"),
    ],
)
def test_bad_settings_stop_the_host_with_the_field_named(make_host, listen, message):
    with pytest.raises(ListenError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ListenSettings.from_dict(listen)
    with pytest.raises(HostError) as failed:
        make_host(listen=listen)
    assert message in failed.value.message and "Traceback" not in failed.value.log_tail


def test_an_address_the_machine_does_not_have_is_a_clear_start_failure(make_host):
    with pytest.raises(HostError, match="cannot listen on 192.0.2.1"):
        make_host(listen={"address": "192.0.2.1"})
