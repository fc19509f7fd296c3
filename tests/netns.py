"""Other "machines" for tests: network namespaces joined by veth pairs to a bridge in a namespace of its own.

    with Network(["server", "client"]) as net:
        host = net["server"].popen([sys.executable, "-m", "http.server", "--bind", net["server"].address, "8000"])
        net["client"].run(["curl", f"http://{net['server'].address}:8000/"])

Each node is a namespace `mlctl-<pid>-<n>-<node>` with `lo` and `eth0` up, an IPv4 address 10.213.0.X/24 and an
IPv6 ULA address fd00:213::X/64 (no duplicate address detection, so it is usable at once). Its `eth0` is one end
of a veth pair whose other end is a port of the bridge `br0`, which lives in the namespace
`mlctl-<pid>-<n>-bridge`. Every `ip` command that makes a link or an address runs with `ip -n NAMESPACE`, so
nothing appears in the machine's own namespace (tests/host/test_host_network.py checks it), and the addresses
reach nothing but the other nodes.

Removal (leaving the `with` block, also on an exception) kills what runs in each node: the process groups of
what `popen` started, then every process the kernel still lists in the namespace (`ip netns pids`, which finds
daemons that left the group with a session of their own), each by its PID; then it deletes the namespaces (the
veth pairs and the bridge go with them). Needs root: outside CI a test without it is skipped with the reason,
in CI (`CI=true`, run as root) it fails.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

import pytest

SUBNET4, SUBNET6 = "10.213.0", "fd00:213:"
FIRST_HOST = 10  # node i gets 10.213.0.(10 + i) and fd00:213::(10 + i)
STOP_GRACE_S = 5.0
_serial = itertools.count()


def require_namespaces() -> None:
    """Skip (outside CI) or fail (in CI) the calling test when namespaces cannot be made here."""
    problem = None
    if shutil.which("ip") is None:
        problem = "the `ip` command (iproute2) is not installed"
    elif os.geteuid() != 0:
        problem = "making network namespaces needs root (CI runs as root)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"this test needs network namespaces in CI: {problem}")
        pytest.skip(f"needs network namespaces: {problem}")


def _ip(*args: str) -> None:
    """Run one `ip` command; a failure raises with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


@dataclass
class Node:
    """One namespace: its addresses and the processes started in it."""

    name: str
    namespace: str
    address: str  # IPv4
    address6: str  # IPv6 (ULA)
    wrapper: list[str] = field(default_factory=list)  # put between `ip netns exec NS` and argv, e.g. unshare
    processes: list[subprocess.Popen] = field(default_factory=list)

    def argv(self, argv: list[str]) -> list[str]:
        """Pure: `argv` as run inside this node (`ip netns exec`, then the wrapper)."""
        return ["ip", "netns", "exec", self.namespace, *self.wrapper, *map(str, argv)]

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start `argv` in this node, in a process group of its own (removed with the network)."""
        proc = subprocess.Popen(self.argv(argv), start_new_session=True, **kwargs)
        self.processes.append(proc)
        return proc

    def run(self, argv: list[str], timeout: float = 60, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
        """Run `argv` in this node to its end (text output captured unless told otherwise)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.argv(argv), timeout=timeout, check=check, **kwargs)

    def pids(self) -> list[int]:
        """Every process the kernel lists in this namespace now."""
        done = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True, timeout=30)
        return [int(p) for p in done.stdout.split()]

    def stop(self) -> None:
        """SIGTERM the groups started here, SIGKILL what remains after STOP_GRACE_S (then anything in the
        namespace still), each by PID; never raises."""
        for proc in self.processes:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.processes:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        for attempt in range(3):
            left = self.pids()
            if not left:
                return
            for pid in left:
                _signal(pid, signal.SIGTERM if attempt == 0 else signal.SIGKILL)
            end = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < end and self.pids():
                time.sleep(0.05)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Network:
    """K namespaces on one bridge (see the module docstring); a context manager."""

    def __init__(self, names: list[str], wrapper: list[str] | dict[str, list[str]] | None = None):
        """`wrapper`: argv put before every command run in a node (all nodes, or {node: argv}), e.g.
        ["unshare", "--mount", "--propagation", "private"] for a private tmpfs."""
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"node names must be distinct and at least one: {names!r}")
        require_namespaces()
        prefix = f"mlctl-{os.getpid()}-{next(_serial)}"
        self.bridge = f"{prefix}-bridge"
        self.nodes: dict[str, Node] = {}
        for i, name in enumerate(names):
            wrap = (wrapper.get(name) if isinstance(wrapper, dict) else wrapper) or []
            host = FIRST_HOST + i
            self.nodes[name] = Node(name, f"{prefix}-{name}", f"{SUBNET4}.{host}", f"{SUBNET6}:{host}", list(wrap))
        self.made: list[str] = []  # namespaces made so far (removed in reverse)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __enter__(self) -> "Network":
        try:
            self._make()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def _make(self) -> None:
        self._add_namespace(self.bridge)
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "br0", "up")
        for i, node in enumerate(self.nodes.values()):
            ns, port = node.namespace, f"v{i}"
            self._add_namespace(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # made in the bridge's namespace, its peer created straight in the node's: never in ours
            _ip("-n", self.bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.bridge, "link", "set", port, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{node.address}/24", "dev", "eth0")
            _ip("-n", ns, "addr", "add", f"{node.address6}/64", "dev", "eth0", "nodad")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def _add_namespace(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.made.append(ns)

    def remove(self) -> None:
        """Stop every node's processes, delete the namespaces; what fails to go is raised after trying all."""
        for node in self.nodes.values():
            if node.namespace in self.made:
                node.stop()
        errors = []
        for ns in reversed(self.made):
            try:
                _ip("netns", "delete", ns)
            except RuntimeError as e:
                errors.append(str(e))
        self.made = []
        if errors:
            raise RuntimeError("; ".join(errors))
