"""A real two-node Ray cluster for the ray tests, started once per test session and stopped by process id.

Ray does not stay on loopback when asked (ray-project/ray#26293): the tests run inside a network
namespace that holds only loopback (`./dev test` runs them under `unshare --net`), where it does.
The head and a second node joined to it (`ray start --address`) run on this machine, each with its
own raylet, so Serve's replicas really run on two nodes. `ray stop` would end every Ray process of
the machine: the cluster is stopped by the process ids of the namespace instead (every process in it
but this one and its ancestors was started by this test session).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORT = 6379
NODE_CPUS = 4  # logical CPUs per node: blue and green of 3 replicas each fit on the two nodes
# seconds one `ray start` may take: it starts the GCS, dashboard, raylet and more Python processes, seconds
# each on an idle machine but minutes on a crowded one (runs timed out in `ray start --head` at a load of
# 12-17 on 2 cores when this was 180 s); generous, as every deadline in the tests: it bounds a start that hangs
START_S = 900
# `ray start` gives up by itself when its raylet has not registered with the GCS within 30 s (hard-coded in
# ray/_private/node.py: "The current node timed out during startup"), which a loaded machine can exceed (the ray
# tests run while the others do): a failed start is stopped and made again, this many times in all
START_ATTEMPTS = 3


def only_loopback() -> bool:
    """Is this process in a network namespace whose only interface is loopback?"""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def _netns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def namespace_pids() -> list[int]:
    """The processes of this private network namespace but this one and its ancestors."""
    mine = _netns("self")
    if mine is None or mine == _netns(1):
        return []  # not a private namespace: never kill by namespace
    keep = _ancestors()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep and _netns(p) == mine]


class RayCluster:
    """The head and one more node; `address` is the GCS address projects name in their `ray:` block."""

    def __init__(self, temp_dir: Path):
        self.temp_dir = temp_dir
        self.address = f"127.0.0.1:{PORT}"
        self.ray = str(Path(sys.executable).parent / "ray")
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_ADDRESS", None)

    def _ray(self, *args: str) -> None:
        done = subprocess.run(
            [self.ray, *args, "--disable-usage-stats"], env=self.env, capture_output=True, text=True, timeout=START_S
        )
        if done.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    @classmethod
    def start(cls) -> "RayCluster":
        """Start the head (no dashboard: nothing uses it) and the second node; a start that fails is stopped and
        made again (START_ATTEMPTS in all), the last failure raised."""
        for attempt in range(1, START_ATTEMPTS + 1):
            c = cls(Path(tempfile.mkdtemp(prefix="mlctl-ray-")))
            try:
                head = ["--head", "--port", str(PORT), "--include-dashboard", "false", "--temp-dir", str(c.temp_dir)]
                c._ray("start", *head, "--num-cpus", str(NODE_CPUS))
                c._ray("start", "--address", c.address, "--num-cpus", str(NODE_CPUS))
                return c
            except RuntimeError as e:
                c.stop()
                if attempt == START_ATTEMPTS:
                    raise
                print(f"raycluster: start {attempt} of {START_ATTEMPTS} failed, starting again: {str(e)[-500:]}")
            except BaseException:
                c.stop()
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SIGTERM every process of the namespace but this one and its ancestors, SIGKILL what is left after 15 s."""
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            pids = namespace_pids()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.2)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
