"""What the local runtime keeps beyond a deployment's life: shared virtualenvs (with the ray runtime's zips of
them), registered models and code snapshots; listing them and pruning the ones nothing uses.

Pruning is conservative: a virtualenv is removed only when this project's state does not use it,
it was not used (applied or refreshed by any project) within `older_than` seconds, no build
holds its lock and no process runs from it; models and code snapshots of this project are removed
when its state no longer names them.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mlctl.runtime.kit import virtualenvs, snapshot, store


@dataclass(frozen=True)
class Entry:
    kind: str  # "env" | "model" | "code"
    path: str
    size: int
    in_use: bool  # named by this project's state
    last_used: float
    detail: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _used(state) -> tuple[set[str], set[str], set[str]]:
    """(env keys, model dirs, code snapshot dirs) this state uses."""
    env_keys, models, code = set(), set(), set()
    for rs in state.resources.values():
        a = rs.attributes
        if rs.kind == "image" and a.get("spec_digest"):
            env_keys.add(virtualenvs.env_key(a["spec_digest"]))
        if rs.kind == "deployment":
            if a.get("image_digest"):
                env_keys.add(virtualenvs.env_key(a["image_digest"]))
            if a.get("code_digest"):
                code.add(snapshot.snapshot_path("", a["code_digest"]).name)
        if rs.kind == "model":
            models.add(f"{a.get('name')}/{a.get('version')}")
    return env_keys, models, code


def entries(data_dir, state) -> list[Entry]:
    """Every virtualenv in the shared cache and every model and code snapshot of this project."""
    env_keys, models, code = _used(state)
    out = []
    root = virtualenvs.cache_dir() / "envs"
    for d in sorted(root.glob("*")) if root.is_dir() else []:
        if not d.is_dir():
            continue
        marker = d / virtualenvs.COMPLETE
        try:
            facts = json.loads(marker.read_text())
            detail = f"python {facts.get('python_version')}, {len(facts.get('frozen', []))} packages"
        except (OSError, ValueError):
            detail = "half-built (an interrupted build)"
        used = d / ".last-used"
        last = used.stat().st_mtime if used.exists() else (marker.stat().st_mtime if marker.exists() else 0)
        out.append(Entry("env", str(d), _size(d), d.name in env_keys, last, detail))
    mroot = store.models_root(data_dir)
    for d in sorted(mroot.glob("*/*")) if mroot.is_dir() else []:
        if d.is_dir():
            key = f"{d.parent.name}/{d.name}"
            out.append(Entry("model", str(d), _size(d), key in models, d.stat().st_mtime, key.replace("/", ":")))
    croot = snapshot.code_root(data_dir)
    for d in sorted(croot.glob("*")) if croot.is_dir() else []:
        if d.is_dir() and not d.name.startswith("."):
            out.append(Entry("code", str(d), _size(d), d.name in code, d.stat().st_mtime, "code snapshot"))
    return out


def prunable(items: list[Entry], older_than: float, now: float | None = None) -> list[Entry]:
    """Pure: the entries prune removes (unused here; envs also unused by anyone for `older_than` s)."""
    now = time.time() if now is None else now
    return [e for e in items if not e.in_use and (e.kind != "env" or now - e.last_used >= older_than)]


def running_from(path) -> list[int]:
    """PIDs of processes whose program lives under `path` (e.g. instances of another project still
    running on a virtualenv no project refreshed lately); read from /proc, empty where there is none."""
    prefix = os.fspath(path).rstrip("/") + "/"
    pids = []
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else []:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0", 1)[0].decode("utf-8", "replace")
        except OSError:
            continue
        if argv0.startswith(prefix):
            pids.append(int(entry.name))
    return pids


def remove(entry: Entry) -> bool:
    """Delete one entry; False when it is busy (a build holds the env's lock, or a process runs from it)."""
    path = Path(entry.path)
    if entry.kind == "env":
        with open(path.parent / f"{path.name}.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if running_from(path):
                return False
            virtualenvs.remove_env(path)
            for extra in (f"{path.name}.log", f"{path.name}.requirements.txt"):
                (path.parent / extra).unlink(missing_ok=True)
            # its zips for Ray's nodes (mlctl/runtime/ray/packages.py packs them beside the cache's envs)
            for packed in (virtualenvs.cache_dir() / "ray-packages").glob(f"env-{path.name}-*"):
                packed.unlink(missing_ok=True)
        return True
    store.remove_read_only(path)
    if entry.kind == "model":
        (path.parent / f"{path.name}.mlctl.json").unlink(missing_ok=True)
    return True
