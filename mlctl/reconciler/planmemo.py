"""Plan memo: the output of the last `mlctl plan --refresh=false`, printed again when nothing it was made from
has changed, in `<data_dir>/lastplan.json` (signed with the user's key: mlctl.signedfiles).

What a plan without refresh is made from, all in the memo's key:
- mlctl itself (every file of the package: path, size, mtime), the Python and PyYAML versions and the
  folders packages are installed in (an install, upgrade or removal changes their mtime);
- the command: output format, whether it is coloured, --destroy, --replace, -C, -f, --state, --runtime,
  MLCTL_RUNTIME, the home and working folders, the project's boundary (mlctl.boundary);
- the bytes of every configuration file, of the project file and of the state file (by sha256: a touched or
  checked-out file with the same text is the same input; a configuration file that is the same file as when a plan
  last hashed it, by inode, size, mtime and ctime, is not read again: mlctl.reconciler.configdigests);
- every file and folder the configuration names (model and code folders, conda files, build contexts, what
  the load checked on disk: mlctl.schemas.specs.probed): each entry's type, link target, inode, size, mtime
  and ctime, walked through links as the digests walk them; these are compared again on every use.

Never believed blindly: a memo signed with another key, unsigned, a link or a special file is no memo; a key
that differs in any input, or a fingerprint that differs in one file, is a miss and the plan is made in full.
A plan is kept only when it had no error and no --set or --var, and no input file changed while it was made (a
ctime later than a second before the plan started, as git treats racily clean files, is not kept). A shared state
(azure_blob) is keyed by its content the same way (one read); it is read again before the plan is kept, and a
plan made while it changed is not kept. `--out` and refresh always make the plan in full.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any, Collection

FILE = "lastplan.json"
FORMAT = 1
MAX_BYTES = 64 * 1024 * 1024
RACY_NS = 1_000_000_000
SKIP_DIRS = frozenset({".mlctl", ".git", "__pycache__"})


def _stat_entry(st: os.stat_result) -> list:
    return [stat.S_IFMT(st.st_mode), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def fingerprint(path: str) -> list:
    """Every entry of a file or folder: [name, link target, [type, inode, size, mtime, ctime]], the first one
    "." with its real path, folders walked through links once each (as mlctl.digests.list_files walks them,
    without its ignore rules, so a change to an ignored file is seen too); an entry that cannot be read is
    [name, "unreadable", errno]."""
    try:
        top = os.stat(path)
    except OSError as e:
        return [[".", "unreadable", e.errno]]
    out: list = [[".", os.readlink(path) if os.path.islink(path) else None, _stat_entry(top), os.path.realpath(path)]]
    if not stat.S_ISDIR(top.st_mode):
        return out
    walked = {os.path.realpath(path)}
    todo = [(path, "")]
    while todo:
        folder, prefix = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            out.append([prefix, "unreadable", e.errno])
            continue
        for entry in entries:
            rel = prefix + entry.name
            try:
                link = os.readlink(entry.path) if entry.is_symlink() else None
                st = os.stat(entry.path)
            except OSError as e:
                out.append([rel, "unreadable", e.errno])
                continue
            out.append([rel, link, _stat_entry(st)])
            if stat.S_ISDIR(st.st_mode) and entry.name not in SKIP_DIRS:
                real = os.path.realpath(entry.path)
                if real not in walked:
                    walked.add(real)
                    todo.append((entry.path, rel + "/"))
    return out


def changed_since(fp: list, since_ns: int) -> bool:
    """Pure: does a fingerprint name an entry whose ctime is at or after `since_ns`?"""
    return any(isinstance(item[2], list) and item[2][4] >= since_ns for item in fp)


def _package_files() -> list:
    """(relative path, size, mtime) of every file of the mlctl package (a development checkout changes them
    without a new version)."""
    import mlctl

    base = os.path.dirname(mlctl.__file__)
    out = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            st = os.stat(os.path.join(folder, name))
            out.append([os.path.relpath(os.path.join(folder, name), base), st.st_size, st.st_mtime_ns])
    return out


def _installed(importable_in: Collection[str] = ()) -> list:
    """The Python and PyYAML versions, and the mtimes of the folders packages are installed in (an
    install, an upgrade or a removal of a package, such as rich or a runtime plug-in, changes them). For the
    folders in `importable_in` (the working and project folders, where files are edited and renamed), the names
    that can be imported from them instead of the mtime (mlctl.reconciler.planbase)."""
    import yaml

    dirs: list[list] = []
    for entry in sys.path:
        try:
            if os.path.realpath(entry or ".") in importable_in:
                dirs.append([entry, _importable(entry or ".")])
            else:
                dirs.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            dirs.append([entry, None])
    return [sys.version, yaml.__version__, bool(getattr(yaml, "__with_libyaml__", False)), dirs]


def _importable(folder: str) -> list[str]:
    """The names in `folder` an import could find (modules, extension modules, .pth files, regular packages: a
    folder without __init__.py never hides an installed package)."""
    out = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.endswith((".py", ".pyc", ".so", ".pth")) or (
                e.is_dir() and os.path.exists(os.path.join(e.path, "__init__.py"))
            ):
                out.append(e.name)
    return sorted(out)


def _file_bytes(path: str) -> tuple[bytes, os.stat_result] | None:
    """A configuration file's bytes and its stat from before they were read; None unless it is a regular file mlctl
    reads as configuration (at most mlctl.schemas.documents.MAX_BYTES; a FIFO is never waited on): the full plan says
    why."""
    from mlctl.schemas.documents import MAX_BYTES as CONFIG_BYTES

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > CONFIG_BYTES:
            return None
        chunks, size = [], 0
        while chunk := os.read(fd, CONFIG_BYTES + 1):
            chunks.append(chunk)
            size += len(chunk)
            if size > CONFIG_BYTES:  # grew since the stat
                return None
        return b"".join(chunks), st
    except OSError:
        return None
    finally:
        os.close(fd)


class PlanMemo:
    """One plan's key and, once `lookup` ran, the stored output when it is this plan's."""

    def __init__(self, project, key: str, files: list[str], state_path: Path, started_ns: int, key_bytes: bytes):
        self.project, self.key, self.files = project, key, files
        self.state_path, self.started_ns, self.user_key = state_path, started_ns, key_bytes
        self.path = Path(project.data_dir) / FILE
        self.backend: Any = None  # a shared state's backend (None: the local file)
        self.state_digest: str | None = None
        self.read: dict[str, bytes] = {}  # the configuration files' bytes hashed into the key: the load takes them
        self.digests: dict[str, str] = {}  # their sha256, by path
        self.context = ""  # the key without the configuration's bytes and the output format (mlctl.reconciler.planbase)
        self.options: dict[str, Any] = {}
        self.roots: dict[str, list] = {}  # what keep fingerprinted
        self.existed: bool | None = None  # a memo of this user's was there (another plan of this folder came before)

    @classmethod
    def prepare(cls, project, options: dict[str, Any]) -> "PlanMemo | None":
        """The memo of a plan with these options, or None when this plan cannot use one (overrides, no user key,
        an input that cannot be read)."""
        from mlctl.boundary import project_boundary
        from mlctl.projectfile import FILE_NAMES
        from mlctl.reconciler.configdigests import ConfigDigests
        from mlctl.schemas.discovery import config_paths
        from mlctl.signedfiles import user_key
        from mlctl.state.backends import state_backend

        if project.overrides:
            return None
        started = time.time_ns()
        try:
            backend = state_backend(project)
        except Exception:  # the full plan says what is wrong
            return None
        key_bytes = user_key()
        if key_bytes is None:
            return None
        files = config_paths(project)
        files += [str(project.root / n) for n in FILE_NAMES if (project.root / n).exists()]
        h = hashlib.sha256()
        read: dict[str, bytes] = {}  # the files hashed now (the others' digests are recorded: configdigests)
        digests: dict[str, str] = {}
        known = ConfigDigests.load(project.data_dir, key_bytes, started)
        for path in files:
            digest = known.recorded(path)
            if digest is None:
                found = _file_bytes(path)
                if found is None:
                    return None
                read[path] = found[0]
                digest = hashlib.sha256(found[0]).hexdigest()
                known.record(path, found[1], digest)
            digests[path] = digest
            h.update(f"{path}\0{digest}\n".encode())
        known.save()
        state_path = Path(backend.where)
        try:
            data = backend.read().data  # never waits on a FIFO; a link or a special file is refused
        except Exception:  # the full plan says what is wrong
            return None
        state_digest = None if data is None else hashlib.sha256(data).hexdigest()
        whole = {
            "format": FORMAT,
            "options": options,
            "root": str(project.root),
            "explicit": [str(f) for f in project.files],
            "state": [str(project.state_path), backend.where, state_digest],
            "runtime": [project.runtime_override, os.environ.get("MLCTL_RUNTIME")],
            "boundary": str(project.boundary) if project.boundary else project_boundary(project.root),
            "where": [os.getcwd(), os.path.expanduser("~")],
            "config": h.hexdigest(),
            "mlctl": _package_files(),
            "installed": _installed(),
        }
        key = hashlib.sha256(json.dumps(whole, sort_keys=True).encode()).hexdigest()
        memo = cls(project, key, files, state_path, started, key_bytes)
        memo.read, memo.digests, memo.options = read, digests, options
        whole.update(config=None, options={k: v for k, v in options.items() if k != "format"})
        whole["installed"] = _installed(importable_in={os.path.realpath("."), os.path.realpath(project.root)})
        memo.context = hashlib.sha256(json.dumps(whole, sort_keys=True).encode()).hexdigest()
        if backend.config.get("backend") != "local":  # a shared state: no file to stat, its content is read again
            memo.backend, memo.state_digest = backend, state_digest
        return memo

    def lookup(self) -> dict | None:
        """The stored output ({"stderr": [lines], "stdout": payload, "changes": bool}) when the memo is this
        plan's and every file and folder the configuration names is as it was; None otherwise."""
        from mlctl.signedfiles import read_signed

        prefix = b'{"key":"%s",' % self.key.encode()  # what keep writes first: another plan's memo is not checked
        payload = read_signed(self.path, self.user_key, MAX_BYTES, "plan memo", prefix)
        if payload is None:
            return None
        self.existed = True
        try:
            entry = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(entry, dict) or entry.get("key") != self.key or not isinstance(entry.get("roots"), dict):
            return None
        for path, fp in entry["roots"].items():
            if fingerprint(path) != fp:
                return None
        if not isinstance(entry.get("stderr"), list) or not isinstance(entry.get("changes"), bool):
            return None
        return entry

    def keep(self, probed, stderr: list[str], stdout: Any, changes: bool) -> bool:
        """Store this plan's output when no input changed while it was made (see the module's docstring);
        `probed`: the paths the load checked on disk. Returns whether it was stored."""
        from mlctl.signedfiles import read_signed, write_signed

        since = self.started_ns - RACY_NS
        roots = self.roots = {p: fingerprint(p) for p in sorted(set(probed))}
        if any(changed_since(fp, since) for fp in roots.values()):
            return False
        if self.backend is not None:
            try:
                data = self.backend.read().data
            except Exception:  # noqa: BLE001 - not kept when the shared state cannot be read again
                return False
            if (None if data is None else hashlib.sha256(data).hexdigest()) != self.state_digest:
                return False
        for path in [*self.files, str(self.state_path)]:
            if self.backend is not None and path == str(self.state_path):
                continue
            try:
                if os.stat(path).st_ctime_ns >= since:
                    return False
            except FileNotFoundError:
                continue
            except OSError:
                return False
        payload = json.dumps(
            {"key": self.key, "roots": roots, "stderr": stderr, "stdout": stdout, "changes": changes},
            separators=(",", ":"),
        ).encode()
        if len(payload) > MAX_BYTES - 100 or not self.path.parent.is_dir():
            return False
        if self.existed is None:  # lookup left it open (another plan's memo: its signature was not checked)
            self.existed = read_signed(self.path, self.user_key, MAX_BYTES, "plan memo") is not None
        write_signed(self.path, self.user_key, payload, "plan memo")
        return True
