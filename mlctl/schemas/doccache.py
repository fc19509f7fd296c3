"""Document cache: each configuration file's parsed data and field lines from earlier loads, keyed by the
sha256 of its text, in `<data_dir>/documents.json`, so an unchanged file is not parsed again.

A repository can commit that file, and `mlctl plan` runs on pull requests, so it is never believed: the file
is signed with a key kept outside every project (`mlctl.signedfiles`: the user's cache folder). A file
whose signature does not verify with this user's key, written by another mlctl version or YAML library, a
link, a special file or one over MAX_BYTES is ignored and rebuilt. An entry is found by the digest of the text
read now, so an edited, touched or checked-out file is parsed again exactly when its text differs. Only
documents read without a problem and made of plain JSON values are kept (a date, a binary value or a
non-string key is parsed each time). Without a usable key there is no cache (every file is parsed).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from mlctl.signedfiles import read_signed, user_key, write_signed

FILE = "documents.json"
FORMAT = 1
MAX_BYTES = 64 * 1024 * 1024


def _context() -> str:
    """What the parsed form depends on besides the text: mlctl's version, the parser's own source (a
    development checkout changes it without a new version) and the YAML library."""
    import yaml

    from mlctl import __version__
    from mlctl.schemas import documents

    parser = hashlib.sha256(Path(documents.__file__).read_bytes()).hexdigest()[:16]
    return f"{FORMAT}|{__version__}|{parser}|{yaml.__version__}|{getattr(yaml, '__with_libyaml__', False)}"


def is_plain(value: Any, depth: int = 0) -> bool:
    """Pure: does `value` come back from JSON as it is (str-keyed dicts, lists, str, int, finite float,
    bool, None)?"""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)
    if depth > 200:
        return False
    if t is dict:
        return all(type(k) is str and is_plain(v, depth + 1) for k, v in value.items())
    if t is list:
        return all(is_plain(v, depth + 1) for v in value)
    return False


class DocumentCache:
    """Parsed documents by text digest. `hits` and `misses` count lookups (tests read them)."""

    def __init__(self, path: Path | None, key: bytes | None, entries: dict | None = None):
        self.path, self.key = path, key
        self.entries: dict[str, Any] = entries or {}
        self.fresh: dict[str, str] = {}  # digest -> the entry's JSON, written by this load
        self.used: set[str] = set()
        self.hits = self.misses = 0

    @classmethod
    def open(cls, data_dir: Path) -> "DocumentCache":
        """The cache of a project's data folder; empty when absent, unsigned, or not this user's."""
        key = user_key()
        path = Path(data_dir) / FILE
        if key is None:
            return cls(None, None)
        return cls(path, key, _read(path, key))

    def get(self, digest: str) -> tuple[Any, dict] | None:
        """(data, {field path: line}) of the text with this digest, or None."""
        entry = self.entries.get(digest)
        if entry is None or digest in self.used:  # the same text twice: parse it again (no shared objects)
            if digest not in self.fresh:
                self.misses += 1
                return None
            entry = json.loads(self.fresh[digest])
        try:
            data, lines = entry
            mapped = {tuple(path): line for path, line in lines}
        except (TypeError, ValueError):
            self.misses += 1
            return None
        self.used.add(digest)
        self.hits += 1
        return data, mapped

    def put(self, digest: str, data: Any, lines: dict) -> None:
        """Keep a document read without a problem (its JSON is taken now: later changes to `data` stay out)."""
        if self.key is None or not is_plain(data):
            return
        self.fresh[digest] = json.dumps([data, [[list(p), n] for p, n in lines.items()]], separators=(",", ":"))

    def save(self) -> None:
        """Write the documents of this load (signed) when they differ from the file's; errors are ignored."""
        if self.path is None or self.key is None or (not self.fresh and self.used == set(self.entries)):
            return
        kept = {d: json.dumps(self.entries[d], separators=(",", ":")) for d in self.used if d in self.entries}
        kept.update(self.fresh)
        body = ",".join(f'"{d}":{kept[d]}' for d in sorted(kept))
        payload = f'{{"context":{json.dumps(_context())},"documents":{{{body}}}}}'.encode()
        write_signed(self.path, self.key, payload, "document cache")


def _read(path: Path, key: bytes) -> dict:
    """The entries of a cache file signed with `key` for this mlctl and YAML library; {} for anything else."""
    payload = read_signed(path, key, MAX_BYTES, "document cache")
    if payload is None:
        return {}
    try:
        doc = json.loads(payload)
    except ValueError:
        return {}
    if not isinstance(doc, dict) or doc.get("context") != _context() or not isinstance(doc.get("documents"), dict):
        return {}
    return doc["documents"]
