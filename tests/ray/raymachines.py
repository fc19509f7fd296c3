"""Three "machines" for the ray tests: a real Ray cluster across network namespaces, started once per test session
(the `ray_machines` fixture, tests/conftest.py), the one cluster of every ray test (`ray_cluster` runs a test's
thread on the client machine).

The machines are the nodes of a `netns.Network` (tests/netns.py), each with its own address that exists only
inside the namespaces (10.213.0.X on a bridge in a namespace of its own):

- `head` (first): the Ray head, `ray start --head --node-ip-address ITS_ADDRESS`;
- `worker` (second): a Ray worker node, `ray start --address HEAD:6379 --node-ip-address ITS_ADDRESS`;
- `client` (third): mlctl and the load client. It is no Ray node: a driver there connects to the GCS address
  (`ray.init(address=HEAD:6379)`, as mlctl does; Ray 2.60 lets a driver without a raylet of its own use the
  head's) and the nodes reach it back at the client's address. Run a command there with `client.run(argv)` /
  `client.popen(argv)` (tests/netns.py), or a thread of the test process with `joined(client)` (threads it
  starts meanwhile stay there, which suits a load client's threads; the `ray_cluster` fixture does this for a
  whole test). Questions to the GCS (`alive_nodes`) are asked by a short process on the client machine, from
  any thread.

The Ray nodes run in mount namespaces of their own where mlctl's cache folder, the tests' temporary folders and
every Python installation but Ray's own are covered by an empty tmpfs (`COVERED`), so nothing reaches a node
through a path: environments, models and code must come through the cluster. The health checks of the GCS are
tuned so that a node's death is noticed in about 3 s (`HEALTH`; Ray's default takes 20 s or more, see
docs/runtime.md for production). A node is killed by killing its namespace's processes by PID (SIGKILL, as a
machine that loses power) and started again with `restart` (a new Ray node id at the same address). Stopping
kills every process of every namespace by PID and deletes the namespaces; nothing is added to the machine's
own network or mount namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from netns import Network, Node

PORT = 6379
NODE_CPUS = 4  # logical CPUs per node: blue and green of 3 replicas each fit on the two nodes
# seconds one `ray start` may take: it starts the GCS, dashboard, raylet and more Python processes, seconds
# each on an idle machine but minutes on a crowded one (runs timed out in `ray start --head` at a load of
# 12-17 on 2 cores when this was 180 s); generous, as every deadline in the tests: it bounds a start that hangs
START_S = 900
# `ray start` gives up by itself when its raylet has not registered with the GCS within 30 s (hard-coded in
# ray/_private/node.py: "The current node timed out during startup"), which a loaded machine can exceed (the ray
# tests run while the others do): a failed start is killed and made again, this many times in all
START_ATTEMPTS = 3
HEAD, WORKER, CLIENT = "head", "worker", "client"
# The GCS checks each raylet every second and marks its node dead after 3 failed checks in a row: a node whose
# processes are gone (connection refused) is dead about 3 s after; one that hangs, after at most 3 x (3 + 1) s.
# Ray's defaults are 5 s before the first check, every 3 s, 10 s timeout, 5 failures: 20-55 s.
HEALTH = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "3000",
    "RAY_health_check_failure_threshold": "3",
}
CLONE_NEWNET = 0x40000000
ALIVE = """
import json, sys
from ray._raylet import GcsClient
from ray.core.generated.gcs_pb2 import GcsNodeInfo

infos = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=30, state_filter=GcsNodeInfo.GcsNodeState.ALIVE)
print(json.dumps({i.node_manager_address: i.node_id.hex() for i in infos.values()}))
"""
# the wrapper every Ray node's command runs in: a mount namespace of its own whose covered folders are empty
# tmpfs mounts (arguments: the folders, "--", then the command)
COVER_SCRIPT = (
    'while [ "$1" != -- ]; do mount -t tmpfs -o size=4m,mode=0755 mlctl-covered "$1" || exit 97; shift; done; '
    'shift; exec "$@"'
)


def covered_folders(cache: Path, temp_root: Path | None) -> list[Path]:
    """What the Ray nodes must not see: mlctl's cache, the tests' temporary folders, and every Python
    installation (pyenv's, uv's) but the one Ray runs on; only the folders that exist."""
    found = [cache, Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlctl"]
    if temp_root is not None:
        found.append(temp_root)
    ray_python = Path(sys.base_prefix).resolve()
    for versions in (Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions",):
        if versions.is_dir():
            found += [p for p in versions.iterdir() if p.is_dir() and p.resolve() != ray_python]
    found.append(Path.home() / ".local" / "share" / "uv" / "python")
    seen, out = set(), []
    for p in found:
        p = p.resolve()
        if p.is_dir() and p not in seen and not ray_python.is_relative_to(p):
            seen.add(p)
            out.append(p)
    return out


class RayNode:
    """One Ray node on its machine: started with `ray start`, killed by the PIDs of its namespace."""

    def __init__(self, cluster: "RayMachines", machine: Node, head: bool):
        self.cluster, self.machine, self.head = cluster, machine, head
        self.temp_dir = cluster.temp_dir / machine.name

    @property
    def address(self) -> str:
        return self.machine.address

    def start(self) -> None:
        """`ray start` on this machine; returns once the node is registered with the GCS. A start that fails is
        killed and made again (START_ATTEMPTS in all); RuntimeError with ray's output when all fail."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        args = ["--num-cpus", str(NODE_CPUS), "--node-ip-address", self.address, "--disable-usage-stats"]
        if self.head:
            args = [
                "--head",
                "--port",
                str(PORT),
                "--include-dashboard",
                "false",
                "--temp-dir",
                str(self.temp_dir),
                *args,
            ]
        else:
            args = ["--address", self.cluster.address, *args]
        for attempt in range(1, START_ATTEMPTS + 1):  # ray start gives up after 30 s on a loaded machine
            done = self.machine.run([self.cluster.ray, "start", *args], timeout=START_S, env=self.cluster.env)
            if done.returncode == 0:
                return
            failed = (
                f"ray start on {self.machine.name} ({self.address}) failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
            if attempt == START_ATTEMPTS:
                raise RuntimeError(failed)
            print(f"raymachines: start {attempt} of {START_ATTEMPTS} failed, starting again: {failed[-500:]}")
            self.kill()

    def kill(self) -> None:
        """SIGKILL every process of this machine by PID (a machine that loses power) and wait until none is left."""
        for _ in range(50):
            pids = self.machine.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"processes of {self.machine.name} survive SIGKILL: {self.machine.pids()}")

    def restart(self) -> None:
        """Kill what runs on this machine and start its Ray node again (a new node id at the same address)."""
        self.kill()
        self.start()

    def node_id(self) -> str | None:
        """The id of the live Ray node at this machine's address (hex), None when the GCS has none."""
        return self.cluster.alive_nodes().get(self.address)


class RayMachines:
    """The head, a worker node and the client machine (see the module docstring). `address` is the GCS address:
    what `ray start --address` takes, and what a driver on the client machine connects to."""

    def __init__(self, cache: Path, temp_root: Path | None = None):
        self.temp_dir = Path(tempfile.mkdtemp(prefix="mlctl-ray-"))
        self.ray = str(Path(sys.executable).parent / "ray")
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **HEALTH}
        self.env.pop("RAY_ADDRESS", None)
        self.covered = covered_folders(cache, temp_root)
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", COVER_SCRIPT, "mlctl-node"]
        wrap += [*map(str, self.covered), "--"]
        self.net = Network([HEAD, WORKER, CLIENT], wrapper={HEAD: wrap, WORKER: wrap})
        self.address = f"{self.net[HEAD].address}:{PORT}"
        self.head = RayNode(self, self.net[HEAD], head=True)
        self.worker = RayNode(self, self.net[WORKER], head=False)
        self.client = self.net[CLIENT]
        # the machine's own network namespace (where this process started), to check that it stays as it was
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        self.home_before = self.home_interfaces()

    def home_interfaces(self) -> str:
        """The links and addresses of the machine's own network namespace (`ip -br`), read from any thread."""
        ns = f"--net=/proc/{os.getpid()}/fd/{self.home}"
        return "".join(
            subprocess.run(["nsenter", ns, "ip", "-br", what], capture_output=True, text=True, check=True).stdout
            for what in ("link", "addr")
        )

    @classmethod
    def start(cls, cache: Path, temp_root: Path | None = None) -> "RayMachines":
        c = cls(cache, temp_root)
        try:
            c.net.__enter__()
            c.head.start()
            c.worker.start()
        except BaseException:
            c.stop()
            raise
        return c

    def stop(self) -> None:
        """End this process's own Ray driver (`disconnect`), kill every process of the three machines by PID, delete
        the namespaces and the nodes' temporary folders; RuntimeError when a namespace is left."""
        names = [n.namespace for n in self.net.nodes.values()] + [self.net.bridge]
        self.disconnect()
        try:
            for node in (self.worker, self.head):  # SIGKILL at once: nothing of a test cluster needs a clean exit
                if node.machine.namespace in self.net.made:
                    with contextlib.suppress(RuntimeError):  # what survives, Network.remove reports
                        node.kill()
            self.net.remove()
        finally:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout.split()
        left = [n for n in names if n in listed]
        now = self.home_interfaces()
        os.close(self.home)
        if left or now != self.home_before:
            raise RuntimeError(
                f"the ray tests' cluster left namespaces behind ({left}) or changed the machine's own network "
                f"namespace:\nbefore:\n{self.home_before}\nafter:\n{now}"
            )

    def disconnect(self) -> None:
        """End the Ray driver of this process (the one `ray_cluster` tests start in-process, on the client machine)
        while the cluster answers: once the cluster is gone, Ray's exit handler waits 60 s for the GCS and then ends
        the process with an error ("Failed to connect to GCS within 60 seconds"), which would fail a run whose tests
        all passed."""
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            with joined(self.client):
                ray.shutdown()

    def mlctl(self, project, *args: str, check: bool = True, timeout: float = 600, env: dict | None = None):
        """Run the real CLI on the client machine (as e2e_support.mlctl does here); CompletedProcess (text).
        AssertionError with its output when `check` and it fails."""
        done = self.client.run(
            [sys.executable, "-m", "mlctl.cli", "-C", str(project), *args], timeout=timeout, env=env or dict(os.environ)
        )
        if check and done.returncode != 0:
            raise AssertionError(f"mlctl {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def ensure_up(self) -> None:
        """Start again each Ray node the GCS does not hold alive (after a test that killed one)."""
        alive = self.alive_nodes()
        for node in (self.head, self.worker):
            if node.address not in alive:
                node.restart()

    def wait_nodes(self, condition, timeout: float, what: str) -> dict[str, str]:
        """The alive nodes ({address: id}) once `condition(them)` holds, asked every 0.2 s; mlctl.waiting.Timeout
        naming `what` when it does not within `timeout` seconds."""
        from mlctl.waiting import wait_until

        def holds() -> tuple | None:
            nodes = self.alive_nodes()
            return (nodes,) if condition(nodes) else None

        return wait_until(holds, timeout, what, interval=0.2)[0]

    def alive_nodes(self) -> dict[str, str]:
        """{node address: node id} of the nodes the GCS holds alive, asked from the client machine."""
        done = self.client.run([sys.executable, "-c", ALIVE, self.address], timeout=120, env=self.env)
        if done.returncode != 0:
            raise RuntimeError(f"asking the GCS at {self.address} for its nodes failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextlib.contextmanager
def joined(machine: Node) -> Iterator[None]:
    """This thread in `machine`'s network namespace meanwhile, then back in the one it was in. Threads started
    meanwhile stay there (a load client's; also Ray's and gRPC's, when this process had none before)."""
    mine = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    theirs = os.open(f"/run/netns/{machine.namespace}", os.O_RDONLY)
    try:
        if os.stat("/proc/thread-self/ns/net").st_ino != os.fstat(theirs).st_ino:
            _setns(theirs)
        yield
    finally:
        _setns(mine)
        os.close(mine)
        os.close(theirs)
