"""CPU seconds used by each component of a serving path, read from /proc (a snapshot before and after a load run).

Components are told apart by their command lines: mlctl's endpoint host, the scoring servers (their worker
processes too), Serve's replica shells, Serve's controller and proxies, Ray's log monitor, Ray's core
(GCS, raylet, dashboard and the rest) and the load client (this process). A process that starts or ends
between two snapshots counts only what it used while both saw it.
"""

from __future__ import annotations

import os

CLOCK = os.sysconf("SC_CLK_TCK")
COMPONENTS = (
    ("mlctl.runtime.host", "endpoint host"),
    ("mlctl.runtime.server", "scoring servers"),
    ("ServeReplica", "Serve replica shells"),
    ("SERVE_REPLICA", "Serve replica shells"),
    ("ServeController", "Serve controller"),
    ("ProxyActor", "Serve proxies"),
    ("log_monitor", "Ray log monitor"),
)


def component(pid: int, cmdline: str) -> str | None:
    """Pure: the component a process with this command line is, None when it is none of the serving path's."""
    if pid == os.getpid():
        return "load client"
    for needle, name in COMPONENTS:
        if needle in cmdline:
            return name
    if "ray" in cmdline or "gcs_server" in cmdline or "raylet" in cmdline:
        return "Ray core"
    return None


def snapshot() -> dict[int, tuple[str, float]]:
    """{pid: (component, CPU seconds so far)} of every process of a component."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = component(int(entry), cmdline)
        if name:
            found[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK)
    return found


def used(before: dict, after: dict) -> dict[str, float]:
    """Pure: CPU seconds per component between two snapshots."""
    out: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        if pid in before:
            out[name] = out.get(name, 0.0) + cpu - before[pid][1]
    return out
