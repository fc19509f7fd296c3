"""Helpers for the loader tests (a module with a unique name: tests/<area> folders are not packages)."""

from __future__ import annotations

import os
from pathlib import Path

from mlctl.digests import HashCache, list_files, merkle_digest


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write {relative path: content} under root; returns root."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def age(root: Path, seconds: int = 10) -> None:
    """Move every file's mtime into the past, so the hash cache trusts it (see digests.RACY_NS)."""
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.stat(p)
            os.utime(p, ns=(st.st_atime_ns - seconds * 10**9, st.st_mtime_ns - seconds * 10**9))


def folder_digest(path, cache: HashCache | None = None) -> tuple[str, dict[str, str]]:
    """(Merkle digest, {relative path: sha256 hex}) of a file or folder, as the loader computes it."""
    cache = cache if cache is not None else HashCache()
    files = {rel: cache.file_sha256(full) for rel, full in list_files(path).items()}
    return merkle_digest(files), files
