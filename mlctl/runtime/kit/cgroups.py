"""Cgroups: an instance's own control group, a child of the group its endpoint host runs in, holding the
instance's memory limit (`resources.limits.memory`) and, where the CPU controller is writable too, its CPU
limit and both reservations (`resources.requests`).

cgroup v2 (the unified hierarchy) is used when it has the controller and delegates it to the host's group
(the controller is in the group's `cgroup.subtree_control`, or the group is the root): `memory.max`,
`memory.low`, `cpu.max`, `cpu.weight`. Otherwise cgroup v1's controller hierarchies: `memory.limit_in_bytes`
(and `memory.memsw.limit_in_bytes`, so swap does not stretch the limit), `memory.soft_limit_in_bytes`,
`cpu.cfs_quota_us`, `cpu.shares`. A machine with neither writable cannot limit a local instance's memory:
`why_not` says why, and the local runtime's preflight makes that a plan error.

Groups are named `mlctl-HOSTPID-NAME`; a host removes a group when its instance stops, and the groups of
hosts that died (their PID gone) when it makes its first one.

Where CPU weights apply (v1's cpu hierarchy; v2's unified one), an instance's group is made inside its host's
parent group `mlctl-HOSTPID-instances`, weighted as this machine's CPUs (`cpu.shares` 1024 x CPUs, `cpu.weight`
100 x CPUs), as Kubernetes puts pods' groups in `kubepods`. Without it, a group with `cpu.shares` of 102 (a 0.1 CPU
request) sits beside the host's group's own tasks, each weighing 1024: an instance that asked for 0.1 CPU got a
tenth of what one that asked for nothing gets, and on a busy machine started ten times slower. Requests weigh
instances against each other inside the parent. Where the parent cannot be made, groups are made beside the host's
tasks, as before. The parent stays while its host lives; the sweep of a later host removes it with its groups.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlctl.quantities import describe_bytes
from mlctl.sizing import Amounts

ROOT = Path("/sys/fs/cgroup")
PREFIX = "mlctl-"
CFS_PERIOD_US = 100_000
V1_MOUNTS = {"memory": ("memory",), "cpu": ("cpu", "cpu,cpuacct", "cpuacct,cpu")}  # v1 mount folders under ROOT


@dataclass(frozen=True)
class Hierarchy:
    """Where one controller ("memory" or "cpu") is for this process: cgroup `version` 1 or 2, and the
    directory of the process's own group in it."""

    version: int
    controller: str
    group: Path


def own_hierarchies(proc_cgroup: str, root: Path = ROOT) -> dict[str, Hierarchy]:
    """{controller: Hierarchy} for "memory" and "cpu" from the text of /proc/self/cgroup, the unified (v2)
    hierarchy first when it has the controller, else v1's. Reads the cgroup file system under `root`."""
    found: dict[str, Hierarchy] = {}
    v1: dict[str, str] = {}
    v2_path = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2_path = parts[2]
        for name in parts[1].split(","):
            v1[name] = parts[2]
    if v2_path is not None:
        base = root if (root / "cgroup.controllers").exists() else root / "unified"
        group = base / v2_path.lstrip("/")
        for controller in ("memory", "cpu"):
            if controller in _words(group / "cgroup.controllers"):
                found[controller] = Hierarchy(2, controller, group)
    for controller in ("memory", "cpu"):
        if controller in found or controller not in v1:
            continue
        for mount in [root / name for name in V1_MOUNTS[controller]]:
            if mount.is_dir():
                found[controller] = Hierarchy(1, controller, mount / v1[controller].lstrip("/"))
                break
    return found


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _settings(h: Hierarchy, limits: Amounts, requests: Amounts) -> dict[str, str]:
    """Pure: {file: value} of a group's limit and reservation in hierarchy `h` (only what is given)."""
    out = {}
    if h.controller == "memory":
        if limits.memory is not None:
            if h.version == 2:
                out["memory.max"] = str(limits.memory)
                out["memory.swap.max"] = "0"
            else:
                out["memory.limit_in_bytes"] = str(limits.memory)
                out["memory.memsw.limit_in_bytes"] = str(limits.memory)
        if requests.memory is not None:
            out["memory.low" if h.version == 2 else "memory.soft_limit_in_bytes"] = str(requests.memory)
    else:
        if limits.cpu is not None:
            quota = max(1000, round(limits.cpu * CFS_PERIOD_US))
            if h.version == 2:
                out["cpu.max"] = f"{quota} {CFS_PERIOD_US}"
            else:
                out["cpu.cfs_period_us"] = str(CFS_PERIOD_US)
                out["cpu.cfs_quota_us"] = str(quota)
        if requests.cpu is not None:
            if h.version == 2:
                out["cpu.weight"] = str(min(10000, max(1, round(requests.cpu * 100))))
            else:
                out["cpu.shares"] = str(max(2, round(requests.cpu * 1024)))
    return out


def _delegated(h: Hierarchy) -> bool:
    """cgroup v2: whether child groups of `h.group` get its controller, enabling it when the kernel allows
    (in the root group, or a group without processes of its own)."""
    if h.controller in _words(h.group / "cgroup.subtree_control"):
        return True
    try:
        _write(h.group / "cgroup.subtree_control", f"+{h.controller}")
    except OSError:
        return False
    return True


def why_not(h: Hierarchy | None, controller: str = "memory") -> str | None:
    """None when a child group with a limit can be made in `h`; else why not, in words for a plan error.
    Makes and removes a probe group."""
    if h is None:
        return f"this machine has no {controller} cgroup controller mlctl can reach (neither cgroup v2 nor v1)"
    if h.version == 2 and not _delegated(h):
        return (
            f"the cgroup v2 group {h.group} does not delegate its {controller} controller to child groups "
            f"('{controller}' is not in its cgroup.subtree_control, and it holds processes)"
        )
    probe = h.group / f"{PREFIX}probe-{os.getpid()}"
    try:
        probe.mkdir(exist_ok=True)
        try:
            name = "memory.max" if h.version == 2 else "memory.limit_in_bytes"
            if controller == "cpu":
                name = "cpu.max" if h.version == 2 else "cpu.cfs_quota_us"
            _write(probe / name, "max" if h.version == 2 else "-1")
        finally:
            probe.rmdir()
    except OSError as e:
        return f"the cgroup {h.group} is not writable here ({e.strerror or e})"
    return None


PARENT = "instances"  # the host's parent group: mlctl-HOSTPID-instances
_parents: dict[tuple[int, Path], Path] = {}  # (host pid, hierarchy group) -> the parent made (or the group itself)


def parent_weight(h: Hierarchy, cpus: int) -> dict[str, str]:
    """Pure: the settings of a host's parent group: a CPU weight of as much as `cpus` tasks (v1) or CPUs of requests
    (v2), and on v2 no cap on its instances' memory reservations."""
    if h.version == 2:  # memory.low: a child's reservation holds only within its parent's (v2 is hierarchical)
        return {"cpu.weight": str(min(10000, 100 * max(1, cpus))), "memory.low": "max"}
    return {"cpu.shares": str(1024 * max(1, cpus))}


def instances_parent(h: Hierarchy) -> Path:
    """Where this host makes its instances' groups in hierarchy `h`: its parent group, weighted as the machine's
    CPUs, in the hierarchies CPU weights apply to (made once); `h.group` itself elsewhere or where it cannot be
    made (see the module docstring)."""
    if h.controller != "cpu" and h.version == 1:
        return h.group
    pid = os.getpid()
    if (pid, h.group) in _parents:
        return _parents[(pid, h.group)]
    path, made = h.group / f"{PREFIX}{pid}-{PARENT}", h.group
    try:
        path.mkdir(exist_ok=True)
        if h.version == 2:  # its instances' groups get every controller the host's group delegates
            wanted = [c for c in ("cpu", "memory") if c in _words(path / "cgroup.controllers")]
            if wanted:
                _write(path / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        for file, value in parent_weight(h, len(os.sched_getaffinity(0))).items():
            if (path / file).exists():
                _write(path / file, value)
        made = path
    except OSError:
        try:
            path.rmdir()
        except OSError:
            pass
    _parents[(pid, h.group)] = made
    return made


class CgroupError(OSError):
    """An instance's memory limit cannot be set: the message says where and why."""


class InstanceGroup:
    """One instance's group in each hierarchy it needs; `join` (in the child, before exec) moves the calling
    process into them; `remove` deletes them once the instance's processes ended."""

    def __init__(self, name: str, limits: Amounts, requests: Amounts, hierarchies: dict[str, Hierarchy]):
        self.dirs: list[Path] = []
        self.memory: Path | None = None
        self.version = 0
        self.shown = describe_bytes(limits.memory) if limits.memory is not None else "none"
        self.limits = limits
        if limits.memory is not None and (problem := why_not(hierarchies.get("memory"))) is not None:
            raise CgroupError(f"cannot limit the instance's memory to {self.shown}: {problem}")
        for controller, h in sorted(hierarchies.items()):
            wanted = _settings(h, limits, requests)
            if not wanted or (h.version == 2 and not _delegated(h)):
                continue  # CPU and reservations: where the machine allows (the plan notes where it does not)
            path = instances_parent(h) / f"{PREFIX}{os.getpid()}-{name}"
            try:
                path.mkdir(exist_ok=True)
                self.dirs.append(path)
                for file, value in wanted.items():
                    if (path / file).exists():
                        _write(path / file, value)
            except OSError as e:
                if controller == "memory" and limits.memory is not None:
                    self.remove()
                    raise CgroupError(f"cannot make the instance's cgroup {path}: {e}") from None
                continue
            if controller == "memory":
                self.memory, self.version = path, h.version

    def describe(self) -> dict:
        """The instance's group (its memory group, else its first) and limits, for `show`."""
        where = self.memory or (self.dirs[0] if self.dirs else None)
        return {"cgroup": str(where) if where else None, "memory_bytes": self.limits.memory, "cpus": self.limits.cpu}

    def join(self) -> None:
        """In the child between fork and exec: into every group of this instance."""
        for path in self.dirs:
            _write(path / "cgroup.procs", "0")

    def adopt(self, pid: int) -> None:
        """Move process `pid` into every group of this instance (a forked instance, before it goes on)."""
        for path in self.dirs:
            _write(path / "cgroup.procs", str(pid))

    def preexec(self) -> None:
        """`preexec_fn` of the instance's process: dies with its parent, then joins the groups."""
        from mlctl.runtime.kit.servercommand import die_with_parent

        die_with_parent()
        self.join()

    def oom_kills(self) -> int:
        """How many times the kernel killed a process of this group for exceeding its memory limit."""
        if self.memory is None:
            return 0
        text = _read(self.memory / ("memory.events" if self.version == 2 else "memory.oom_control"))
        match = re.search(r"^oom_kill (\d+)", text, re.M)
        return int(match[1]) if match else 0

    def remove(self) -> None:
        """Delete the groups (a group still holding a process stays; the next host's sweep removes it)."""
        for path in self.dirs:
            try:
                path.rmdir()
            except OSError:
                pass


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def sweep(hierarchies: dict[str, Hierarchy]) -> None:
    """Remove the empty instance groups of endpoint hosts that are gone (their PID no longer runs)."""
    for h in hierarchies.values():
        try:
            children = list(h.group.iterdir())
        except OSError:
            continue
        for child in children:
            m = re.fullmatch(rf"{PREFIX}(\d+)-.+", child.name)
            if m and child.is_dir() and not Path(f"/proc/{m[1]}").exists():
                if child.name.endswith(f"-{PARENT}"):  # its instances' groups first
                    for grandchild in _subgroups(child):
                        try:
                            grandchild.rmdir()
                        except OSError:
                            pass
                try:
                    child.rmdir()
                except OSError:
                    pass


def _subgroups(group: Path) -> list[Path]:
    try:
        return [p for p in group.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    except OSError:
        return []


def current() -> dict[str, Hierarchy]:
    """This process's hierarchies."""
    return own_hierarchies(_read(Path("/proc/self/cgroup")))
