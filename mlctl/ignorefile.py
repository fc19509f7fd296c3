"""Ignore files: the `.amlignore` (else `.gitignore`) at the root of a code or model folder, which
names files Azure ML leaves out when it uploads the folder; mlctl leaves them out of digests and copies.

As Azure does, only the folder's own root file is read (`.amlignore` wins when both exist). The
patterns are gitignore(5)'s, matched by `pathspec`'s GitIgnoreSpec: `#` comments, `!` re-includes,
a trailing `/` matches folders only, a pattern with a `/` elsewhere is anchored at the folder, `*`,
`?`, `[...]` and `**`; the last matching pattern decides. Three things are adjusted to read patterns
as git does: POSIX classes in bracket expressions (`[[:digit:]]`) are spelled out; a pattern that is
not a valid expression (a backwards range `[z-a]`) matches nothing instead of failing the whole
file; and a trailing `/**` matches what is inside the folder but not the folder itself (pathspec
matches `tmp/` too, so `tmp/**` with `!tmp/keep` would lose keep). Nothing below an excluded
folder can be re-included: the walk (`digests.list_files`) does not enter it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pathspec import GitIgnoreSpec

NAMES = (".amlignore", ".gitignore")

# POSIX bracket classes as the ranges they stand for (ASCII, as git reads them)
POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \t",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": " \t\n\r\f\v",
    "xdigit": "0-9A-Fa-f",
    "punct": ":-@!-.[-`{-~",  # no "!" first (it negates), no "/" (it splits the pattern; no name has one)
}
_POSIX_CLASS = re.compile(r"\[:(" + "|".join(POSIX_CLASSES) + r"):\]")


def pattern_line(line: str) -> str | None:
    """Pure: one line of an ignore file as pathspec reads it (POSIX classes spelled out as ranges, a
    trailing '/**' as '/?*'), or None when it is not a valid pattern (git matches nothing with it)."""
    line = _POSIX_CLASS.sub(lambda m: POSIX_CLASSES[m[1]], line.rstrip("\r\n"))
    if not line.endswith("\\ ") and line.rstrip(" \t").endswith("/**"):
        line = line.rstrip(" \t")[:-2] + "?*"  # the folder's contents, not the folder
    try:
        GitIgnoreSpec.from_lines([line])
    except (re.error, ValueError):
        return None
    return line


@dataclass(frozen=True)
class IgnoreFile:
    """The patterns of one folder's ignore file; `path` None when the folder has none."""

    path: str | None
    spec: GitIgnoreSpec | None = None

    @classmethod
    def of_lines(cls, lines, path: str | None = None) -> "IgnoreFile":
        """Pure: the ignore file with these lines."""
        return cls(path, GitIgnoreSpec.from_lines(p for p in map(pattern_line, lines) if p is not None))

    @classmethod
    def of(cls, folder: str) -> "IgnoreFile":
        """Read `folder/.amlignore`, else `folder/.gitignore`; an unreadable one counts as absent."""
        for name in NAMES:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8", errors="replace") as f:
                        return cls.of_lines(f.readlines(), path)
                except OSError:
                    return cls(None)
        return cls(None)

    def excludes(self, relpath: str, is_folder: bool) -> bool:
        """Pure: whether `relpath` ('/'-separated, relative to the folder) is left out (its parents
        are the caller's to check: the walk prunes excluded folders)."""
        if self.spec is None:
            return False
        return self.spec.match_file(relpath + "/" if is_folder else relpath)
