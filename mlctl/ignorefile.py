"""Ignore files: the `.amlignore` (else `.gitignore`) at the root of a code or model folder, which
names files Azure ML leaves out when it uploads the folder; mlctl leaves them out of digests and copies.

As Azure does, only the folder's own root file is read (`.amlignore` wins when both exist), and
the patterns follow gitignore(5): `#` comments, `!` re-includes, a trailing `/` matches folders
only, a pattern with a `/` elsewhere is anchored at the folder, `*`, `?`, `[...]` and `**`. The
last matching pattern decides; nothing below an excluded folder can be re-included.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

NAMES = (".amlignore", ".gitignore")


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern
    negate: bool
    folders_only: bool


def _class_end(text: str, i: int) -> int:
    """Pure: the index of the `]` closing the bracket expression opened at `text[i]`, or -1."""
    j = i + 1
    if text[j:j + 1] in ("!", "^"):
        j += 1
    if text[j:j + 1] == "]":
        j += 1
    return text.find("]", j)


def _segment(text: str) -> str:
    """Pure: one path segment of a pattern as a regex (no '/' inside)."""
    out, i = "", 0
    while i < len(text):
        c = text[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "\\" and i + 1 < len(text):
            i += 1
            out += re.escape(text[i])
        elif c == "[" and _class_end(text, i) > 0:
            end = _class_end(text, i)
            body = text[i + 1:end].replace("[", "\\[")
            out += "[" + ("^" + body[1:] if body[:1] in ("!", "^") else body) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return out


def compile_rule(line: str) -> Rule | None:
    """Pure: one line of an ignore file as a Rule (None for blank lines and comments)."""
    line = line.rstrip("\r\n")
    if not line.endswith("\\ "):
        line = line.rstrip(" \t")
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate or line.startswith(("\\!", "\\#")):   # a leading backslash escapes ! and #
        line = line[1:]
    folders_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    parts = line.lstrip("/").split("/")
    rx = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            rx += ".*" if last else "(?:[^/]*/)*"
        else:
            rx += _segment(part) + ("" if last else "/")
    return Rule(re.compile(("" if anchored else "(?:.*/)?") + rx + r"\Z"), negate, folders_only)


@dataclass(frozen=True)
class IgnoreFile:
    """The rules of one folder's ignore file; `path` None when the folder has none."""

    path: str | None
    rules: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, folder: str) -> "IgnoreFile":
        """Read `folder/.amlignore`, else `folder/.gitignore`; an unreadable one counts as absent."""
        for name in NAMES:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8", errors="replace") as f:
                        rules = tuple(r for r in map(compile_rule, f) if r is not None)
                except OSError:
                    return cls(None)
                return cls(path, rules)
        return cls(None)

    def excludes(self, relpath: str, is_folder: bool) -> bool:
        """Pure: whether `relpath` ('/'-separated, relative to the folder) is left out (its parents
        are the caller's to check: the walk prunes excluded folders)."""
        excluded = False
        for rule in self.rules:
            if (not rule.folders_only or is_folder) and rule.regex.match(relpath):
                excluded = not rule.negate
        return excluded
