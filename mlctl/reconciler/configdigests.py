"""Configuration digests: the sha256 of each configuration file from the last plan, in `<data_dir>/configdigests.json`
(signed with the user's key: mlctl.signedfiles), so the plan memo's key (mlctl.reconciler.planmemo) reads and hashes
only the files that changed since, not all 7,500 of a large project.

An entry is (path, inode, size, mtime_ns, ctime_ns, sha256), and it is used only when the file is a regular file whose
inode, size, mtime and ctime are the recorded ones. It is never believed blindly:
- it is recorded only when the file's ctime was more than RACY_NS before the plan that hashed it started. Every
  change to a file (a write, a truncation, a rename over it, a link, a chmod) sets its ctime to the kernel's time of
  that change, and no call sets a ctime back, so a change after the file was hashed gives it a ctime of that plan's
  start or later, which is not the recorded one. A change within the same timestamp tick as the one before the hash
  (same size, same mtime) is the racy case git knows: such a file (ctime less than RACY_NS before the plan) is not
  recorded and is hashed again by the next plan. `touch -d` sets the mtime, not the ctime; a `git checkout` writes.
- a file signed with another key, unsigned, garbage, a link or a special file is no cache (every file is hashed);
  an entry of another path (a copied project) is not this file's.
Only a changed system clock (set back by more than RACY_NS) could defeat the ctime rule, as for git's index.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

FILE = "configdigests.json"
FORMAT = 1
MAX_BYTES = 64 * 1024 * 1024
RACY_NS = 1_000_000_000


def stat_key(st: os.stat_result) -> list[int]:
    """Pure: what an entry is compared by: [inode, size, mtime_ns, ctime_ns]."""
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class ConfigDigests:
    """The recorded digests of a project's configuration files; `entries`: {path: [inode, size, mtime, ctime, hex]}."""

    def __init__(self, path: Path, key: bytes, entries: dict, started_ns: int):
        self.path, self.key, self.entries, self.started_ns = path, key, entries, started_ns
        self.kept: dict[str, list] = {}  # what the next file holds: the entries of this plan's files

    @classmethod
    def load(cls, data_dir: str | os.PathLike, key: bytes, started_ns: int) -> "ConfigDigests":
        """This user's recorded digests for the folder; an empty record for anything else (see the docstring)."""
        from mlctl.signedfiles import read_signed

        path = Path(data_dir) / FILE
        payload = read_signed(path, key, MAX_BYTES, "configuration digests")
        entries: dict = {}
        if payload is not None:
            try:
                doc = json.loads(payload)
                if isinstance(doc, dict) and doc.get("format") == FORMAT and isinstance(doc.get("files"), dict):
                    entries = doc["files"]
            except ValueError:
                pass
        return cls(path, key, entries, started_ns)

    def recorded(self, path: str) -> str | None:
        """The sha256 hex of `path` when its entry holds for the file as it is now (same regular file: inode, size,
        mtime, ctime); None when it must be read and hashed."""
        entry = self.entries.get(path)
        if entry.__class__ is not list or len(entry) != 5 or entry[4].__class__ is not str:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if entry[:4] != [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns] or not stat.S_ISREG(st.st_mode):
            return None
        self.kept[path] = entry
        return entry[4]

    def record(self, path: str, st: os.stat_result, digest: str) -> None:
        """Record `digest` for the file `st` describes (taken before its bytes were read), unless it changed less than
        RACY_NS before this plan started (then the next plan hashes it again)."""
        if stat.S_ISREG(st.st_mode) and st.st_ctime_ns + RACY_NS <= self.started_ns:
            self.kept[path] = [*stat_key(st), digest]

    def save(self) -> None:
        """Write the entries of this plan's files when they are not what was read and the folder was planned before
        (a recorded digest or a plan memo there: a fresh clone's one plan does not pay for it). Effect: a signed file;
        a read-only project goes without."""
        from mlctl.reconciler.planmemo import FILE as MEMO
        from mlctl.signedfiles import write_signed

        if self.kept == self.entries or not (self.entries or (self.path.parent / MEMO).exists()):
            return
        payload = json.dumps({"format": FORMAT, "files": self.kept}, separators=(",", ":")).encode()
        if len(payload) <= MAX_BYTES - 100:
            write_signed(self.path, self.key, payload, "configuration digests")
