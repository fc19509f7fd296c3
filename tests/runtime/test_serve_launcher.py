"""The ray runtime's "serve" launcher without a cluster: instances take the spec's servers one each, and an
instance whose server ends is reported gone at once (its idle watch connection closes and a new one is
refused), while a stopped one is reported stopped. Real TCP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlctl.runtime.host.launcher import InstanceKey, Place
from mlctl.runtime.ray.launcher import Launcher


async def server() -> tuple[asyncio.AbstractServer, str, list]:
    """A TCP server on a free port of 127.0.0.1 that holds connections open; its address, its connections."""
    held = []

    async def hold(reader, writer):
        held.append(writer)
        await reader.read()

    s = await asyncio.start_server(hold, "127.0.0.1", 0)
    return s, f"tcp:127.0.0.1:{s.sockets[0].getsockname()[1]}", held


def spec(servers: list[dict]):
    return SimpleNamespace(
        name="blue", launch={"cluster": "127.0.0.1:1", "application": "mlctl-x-ep-blue-0", "servers": servers}
    )


def test_each_instance_takes_its_own_server_and_a_server_that_ends_is_gone_at_once(tmp_path: Path):
    async def scenario():
        (s1, a1, held1), (s2, a2, _) = await server(), await server()
        launcher = Launcher(Place(tmp_path, "ep", tmp_path), "blue")
        keys = [InstanceKey(0, 0), InstanceKey(0, 1)]
        servers = [{"replica_id": "r1", "address": a1}, {"replica_id": "r2", "address": a2}]
        assert await launcher.start(spec(servers), keys) == [a1, a2]
        assert launcher.describe(keys[1])["replica_id"] == "r2"
        gone = [asyncio.ensure_future(launcher.gone(k)) for k in keys]
        await asyncio.sleep(0.5)
        assert not any(g.done() for g in gone) and held1  # both watched, neither gone
        s1.close()  # the first replica ends: its listener closes, then its connections
        for w in held1:
            w.close()
        why = await asyncio.wait_for(gone[0], 30)
        assert "is gone" in why and "r1" in why
        assert not gone[1].done()
        await launcher.stop([keys[1]])
        assert await asyncio.wait_for(gone[1], 30) == "stopped"
        assert launcher.health(keys[1]) == "stopped"
        s2.close()

    asyncio.run(scenario())


def test_an_instance_started_when_every_server_is_taken_shares_one(tmp_path: Path):
    """(A revived instance whose predecessor's restart already took Serve's replacement.)"""

    async def scenario():
        launcher = Launcher(Place(tmp_path, "ep", tmp_path), "blue")
        servers = [{"replica_id": "r1", "address": "tcp:127.0.0.1:9"}]
        assert await launcher.start(spec(servers), [InstanceKey(0, 0)]) == ["tcp:127.0.0.1:9"]
        assert await launcher.start(spec(servers), [InstanceKey(1, 0)]) == ["tcp:127.0.0.1:9"]

    asyncio.run(scenario())


def test_a_spec_without_servers_is_refused(tmp_path: Path):
    launcher = Launcher(Place(tmp_path, "ep", tmp_path), "blue")
    with pytest.raises(OSError, match="lack the application"):
        asyncio.run(launcher.start(SimpleNamespace(name="blue", launch={}), [InstanceKey(0, 0)]))
