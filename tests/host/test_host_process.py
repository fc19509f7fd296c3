"""The host process itself: detached start, recorded/pinned ports, deep data folders, kill and shutdown."""

from __future__ import annotations

import os
import signal
import socket
import threading
import urllib.request

import pytest

from mlctl.runtime.host.runfiles import host_log, is_alive, read_run_record
from mlctl.runtime.host.client import HostClient, HostError, find_host, start_host

from hosttools import body, send, wait_until


def test_start_is_idempotent_and_shutdown_leaves_no_process(make_host):
    host = make_host()
    assert start_host(host.data_dir, host.name, auth_mode="key", port=None).pid == host.info.pid
    assert os.getsid(host.info.pid) == host.info.pid  # detached: its own session
    host.create("blue", count=2)
    pids = [i["pid"] for i in host.client.status()["deployments"]["blue"]["instances"]]
    socket_dir = os.path.dirname(host.client.status()["deployments"]["blue"]["instances"][0]["socket"])
    host.client.shutdown()
    assert not is_alive(host.info.pid) and not any(is_alive(p) for p in pids)
    assert not os.path.exists(socket_dir) and not os.path.exists(host.info.admin_socket)
    assert find_host(host.data_dir, host.name) is None
    with pytest.raises(HostError) as gone:
        HostClient.for_endpoint(host.data_dir, host.name)
    assert gone.value.kind == "not_running"


def test_killed_host_takes_its_instances_and_restarts_on_the_recorded_port(make_host):
    host = make_host()
    host.create("blue")
    pids = [i["pid"] for i in host.client.status()["deployments"]["blue"]["instances"]]
    os.kill(host.info.pid, signal.SIGKILL)
    wait_until(lambda: not is_alive(host.info.pid) and not any(is_alive(p) for p in pids), 10, "no orphans")
    assert find_host(host.data_dir, host.name) is None
    again = make_host()
    assert again.info.port == host.info.port and again.info.pid != host.info.pid
    again.create("blue")
    again.client.set_traffic({"blue": 100})
    assert send(again.url + "/score", 2, headers=again.auth())[0][0] == 200  # same keys


def test_pinned_port_is_used_and_a_taken_one_is_a_clear_error(make_host, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    host = make_host(port=free)
    assert host.info.port == free
    with pytest.raises(HostError) as taken:
        start_host(tmp_path / "other", "ep2", auth_mode="key", port=free, timeout=20)
    assert taken.value.kind == "host_failed" and str(free) in taken.value.message + taken.value.log_tail


def test_deep_data_folder_keeps_sockets_under_the_unix_path_limit(make_host, tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5) / ".mlctl"
    host = make_host(name="an-endpoint-with-a-long-name", data_dir=deep)
    assert len(os.fsencode(host.info.admin_socket)) < 108
    assert read_run_record(deep, host.name)["admin_socket"] == host.info.admin_socket
    host.create("a-deployment-name-of-32-chars-xx")
    host.client.set_traffic({"a-deployment-name-of-32-chars-xx": 100})
    assert send(host.url + "/score", 2, headers=host.auth())[0][0] == 200


def test_shutdown_lets_a_request_in_flight_finish_and_logs_it(make_host):
    """A request answered by callbacks (no task) is still waited for at shutdown, and its access line
    and metrics are settled before the host exits."""
    host = make_host()
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    result = {}

    def call():
        req = urllib.request.Request(
            host.url + "/score",
            data=body(sleep=1.5),
            method="POST",
            headers=host.auth(**{"Content-Type": "application/json", "x-request-id": "in-flight-at-stop"}),
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            result["status"] = r.status

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    wait_until(lambda: host.client.status()["deployments"]["blue"]["in_flight"] == 1, 10, "the request in flight")
    host.client.shutdown()
    caller.join(30)
    assert result.get("status") == 200
    assert not is_alive(host.info.pid)
    assert "in-flight-at-stop POST /score blue 200" in host_log(host.data_dir, host.name).read_text()
