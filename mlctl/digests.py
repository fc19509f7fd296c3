"""Digests: content hashes of files, folders (Merkle) and JSON values, with a persistent file-hash cache.

A folder's digest depends on the relative paths and contents of its files, never on
mtimes or where the folder lives, so two checkouts of one project agree. File hashes are
cached by (path, size, mtime_ns) in `<data_dir>/hashcache.json`, so a second load reads
no file it already hashed. A repository can commit that file (plans run on pull requests),
so it is signed with the user's key (`mlctl.signedfiles`) and a file mlctl did not sign is
an empty cache: a forged entry cannot make a changed file look unchanged.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any, Mapping

SKIP_DIRS = frozenset({".mlctl", ".git", "__pycache__"})
SKIP_SUFFIXES = (".pyc",)
CACHE_FILE = "hashcache.json"
CACHE_FORMAT = 2  # 2: signed (format 1 files were not, and read as an empty cache)
CACHE_MAX_BYTES = 64 * 1024 * 1024
# A file modified less than this long before it was hashed may change again within the
# filesystem's timestamp granularity without its (size, mtime) changing ("racily clean"):
# such an entry is re-hashed next time instead of trusted.
RACY_NS = 1_000_000_000
MAX_STALE_ENTRIES = 50_000


def json_digest(value: Any) -> str:
    """Pure: "sha256:<hex>" of the canonical JSON of `value` (sorted keys, no spaces)."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()


def merkle_digest(files: Mapping[str, str], root_name: str | None = None) -> str:
    """Pure: "sha256:<hex>" over the sorted (relative path, file sha256) pairs.

    `root_name` prefixes every path (a registered model folder keeps its folder name, so
    renaming it changes what the scoring script sees and therefore the digest).
    """
    h = hashlib.sha256()
    for rel in sorted(files):
        name = f"{root_name}/{rel}" if root_name else rel
        h.update(name.encode("utf-8") + b"\0" + files[rel].encode("ascii") + b"\n")
    return "sha256:" + h.hexdigest()


class NotRegularFile(OSError):
    """A path to hash that is not a regular file (a FIFO, a device such as /dev/zero, a socket)."""

    def __init__(self, path: str):
        super().__init__(
            errno.EINVAL, "not a regular file (a FIFO, device or socket); mlctl hashes regular files only", path
        )


class HashCache:
    """sha256 of files keyed by (absolute path, size, mtime_ns); persisted as JSON.

    `computed` counts files actually read and hashed, `hits` files answered from the
    cache, `computed_paths` names the files read (tests use them to prove a second
    load reads nothing it already hashed).
    """

    def __init__(self, path: str | os.PathLike | None = None, entries: dict | None = None, key: bytes | None = None):
        self.path = Path(path) if path and key else None  # no key: nothing is kept between loads
        self.key = key
        self.entries: dict[str, list] = entries or {}
        self.used: set[str] = set()
        self.hits = 0
        self.computed = 0
        self.computed_paths: list[str] = []
        self._dirty = False

    @classmethod
    def load(cls, path: str | os.PathLike) -> "HashCache":
        """Read the cache file; a missing, unreadable or unsigned one is an empty cache (it is only a cache)."""
        from mlctl.privatefiles import read_json
        from mlctl.signedfiles import read_signed, user_key

        key = user_key()
        payload = read_signed(Path(path), key, CACHE_MAX_BYTES, "hash cache") if key else None
        try:
            doc = read_json(payload) if payload is not None else {}
            entries = doc["files"] if doc.get("format") == CACHE_FORMAT else {}
            if not isinstance(entries, dict):
                entries = {}
        except (ValueError, KeyError, AttributeError):
            entries = {}
        return cls(path, entries, key)

    def file_sha256(self, path: str) -> str:
        """sha256 hex of the file's content, from the cache when size and mtime_ns still match.
        NotRegularFile (an OSError) for a FIFO, device or socket: never waited on or read without end."""
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path)
        entry = self.entries.get(path)
        self.used.add(path)
        if (
            isinstance(entry, list)
            and len(entry) == 4
            and entry[0] == st.st_size
            and entry[1] == st.st_mtime_ns
            and entry[1] + RACY_NS <= entry[3]
        ):
            self.hits += 1
            return entry[2]
        started = time.time_ns()
        h = hashlib.sha256()
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced since the stat above
                raise NotRegularFile(path)
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        sha = h.hexdigest()
        self.computed += 1
        self.computed_paths.append(path)
        self.entries[path] = [st.st_size, st.st_mtime_ns, sha, started]
        self._dirty = True
        return sha

    def save(self) -> None:
        """Write the cache atomically (temp file + rename) when it changed; errors are ignored."""
        if not self.path or not self._dirty:
            return
        stale = [p for p in self.entries if p not in self.used]
        if len(stale) > MAX_STALE_ENTRIES:
            for p in stale:
                del self.entries[p]
        from mlctl.signedfiles import write_signed

        payload = json.dumps({"format": CACHE_FORMAT, "files": self.entries}, separators=(",", ":")).encode()
        assert self.key is not None  # a path is kept only with a key
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # as before signing: the data folder may be new
        except OSError:
            return  # a read-only checkout: the cache is only a speed-up
        write_signed(self.path, self.key, payload, "hash cache")
        self._dirty = False


class LinkRefused(OSError):
    """A symbolic link in a model or code folder that leaves the project's boundary, or that loops back into a
    folder that holds it (`mlctl.boundary`)."""

    def __init__(self, link: str, target: str, why: str):
        super().__init__(errno.ELOOP if why == "loop" else errno.EXDEV, why, link)
        self.link, self.target, self.why = link, target, why


def list_files(
    path: str | os.PathLike, excluded: list[str] | None = None, boundary: str | None = None
) -> dict[str, str]:
    """{relative path (with '/'): absolute path} of the files a digest covers, sorted: the one
    answer to "what does this model / code folder hold" (digests, plans and copies all use it).

    A single file maps its base name to itself. Skips `.mlctl/`, `.git/`,
    `__pycache__/` and `*.pyc`, and what the folder's `.amlignore` (else `.gitignore`) names,
    as Azure ML does when it uploads the folder (`mlctl.ignorefile`). Symbolic links are followed
    (what a copy of the folder holds is what is hashed), each folder once: a link to a folder walked
    already is not walked again. With a `boundary` (the real path of `mlctl.boundary.project_boundary`)
    a link whose target is outside it, or one back into a folder that holds it (a loop), raises
    LinkRefused before anything behind it is read. `excluded`, when given, receives what the ignore file
    left out (folders with a trailing '/').
    """
    from mlctl.boundary import is_inside
    from mlctl.ignorefile import IgnoreFile

    p = os.fspath(path)
    if not os.path.isdir(p):
        if boundary is not None and os.path.islink(p):
            _check_link(p, boundary)
        return {os.path.basename(p): p}
    ignore = IgnoreFile.of(p)
    found = {}
    top = os.path.realpath(p)
    walked = {top}
    todo = [(p, "", top)]  # (folder, its relative prefix, its real path)
    while todo:
        folder, prefix, here = todo.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel, link = prefix + entry.name, entry.is_symlink()
            if link and boundary is not None:
                _check_link(entry.path, boundary)
            if entry.is_dir():
                if entry.name in SKIP_DIRS:
                    continue
                real = os.path.realpath(entry.path)
                if link and boundary is not None and is_inside(here, real):
                    raise LinkRefused(entry.path, real, "loop")  # it points at a folder that holds it
                if real in walked:
                    continue
                if ignore.excludes(rel, True):
                    if excluded is not None:
                        excluded.append(rel + "/")
                    continue
                walked.add(real)
                todo.append((entry.path, rel + "/", real))
            else:
                if entry.name.endswith(SKIP_SUFFIXES):
                    continue
                if ignore.excludes(rel, False):
                    if excluded is not None:
                        excluded.append(rel)
                    continue
                found[rel] = entry.path
    return dict(sorted(found.items()))


def _check_link(link: str, boundary: str) -> str:
    """The real path of the link `link`; LinkRefused when it is outside `boundary`."""
    from mlctl.boundary import is_inside

    real = os.path.realpath(link)
    if not is_inside(real, boundary):
        raise LinkRefused(link, real, "out")
    return real
