"""tests/netns.py itself: nodes reach each other over IPv4 and IPv6, the machine's own namespace never sees an
interface, address or route of theirs, and removal ends what ran inside (also a daemon that left its group)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from netns import Network, SUBNET4, SUBNET6

ECHO = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.bind((sys.argv[1], 7000)); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); c.sendall(c.recv(100).upper()); c.close()
"""
CALL = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7000), timeout=20); c.sendall(b"hello"); print(c.recv(100).decode())
"""


def root_view() -> dict:
    """The machine's own namespace: its links (names), addresses and routes, IPv4 and IPv6."""
    out = {}
    for what in (["-o", "link"], ["-o", "addr"], ["route"], ["-6", "route"]):
        done = subprocess.run(["ip", *what], capture_output=True, text=True, timeout=30, check=True)
        out[" ".join(what)] = done.stdout
    return out


def ours(view: dict, net: Network) -> list[str]:
    """Lines of the root namespace's view that name one of `net`'s links, namespaces or addresses."""
    marks = [SUBNET4 + ".", SUBNET6, net.bridge.rsplit("-", 1)[0]]  # its addresses and namespaces
    return [line for text in view.values() for line in text.splitlines() if any(m in line for m in marks)]


@pytest.mark.parametrize("family", ["address", "address6"])
def test_nodes_reach_each_other_and_the_machine_sees_nothing_of_them(family):
    before = root_view()
    with Network(["server", "client"]) as net:
        server, client = net["server"], net["client"]
        addr = getattr(server, family)
        echo = server.popen([sys.executable, "-c", ECHO, addr], stdout=subprocess.PIPE, text=True)
        assert echo.stdout.readline().strip() == "listening"
        answer = client.run([sys.executable, "-c", CALL, addr], timeout=60)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip() == "HELLO"
        assert echo.wait(30) == 0
        during = root_view()
        assert ours(during, net) == []
        # each node sees its own address on eth0, and the machine's interfaces are not there
        links = client.run(["ip", "-o", "link"]).stdout
        assert "eth0" in links and "docker0" not in links
        assert client.address in client.run(["ip", "-o", "addr"]).stdout
    after = root_view()
    assert ours(after, net) == []
    # nothing new is left behind (other engineers' containers may come and go: only veth/br- lines may differ)
    for key in before:
        added = set(after[key].splitlines()) - set(before[key].splitlines())
        assert all("veth" in line or "br-" in line or "docker" in line for line in added), added
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert net.bridge not in namespaces and net["server"].namespace not in namespaces


def test_removal_ends_processes_that_left_their_group_and_the_wrapper_applies(tmp_path):
    with Network(["a"], wrapper=["unshare", "--mount", "--propagation", "private"]) as net:
        node = net["a"]
        # a daemon: a session of its own, so killing the group that popen made does not reach it
        started = node.run(["sh", "-c", "setsid sleep 300 > /dev/null 2>&1 < /dev/null & echo $!"])
        daemon = int(started.stdout.strip())
        assert daemon in node.pids()
        mounts = node.run(["sh", "-c", f"mount -t tmpfs none {tmp_path} && touch {tmp_path}/inside && ls {tmp_path}"])
        assert mounts.stdout.split() == ["inside"], mounts.stderr
        assert os.listdir(tmp_path) == []  # the tmpfs was private to the node's mount namespace
    assert not os.path.exists(f"/proc/{daemon}") or open(f"/proc/{daemon}/stat").read().split()[2] == "Z"


def test_a_failed_start_removes_what_was_made():
    net = Network(["x", "y"])
    net.nodes["y"].address = "not-an-address"
    with pytest.raises(RuntimeError, match="not-an-address"):
        with net:
            pass
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert net.bridge not in namespaces and net["x"].namespace not in namespaces
