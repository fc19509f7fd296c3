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


POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "digit": "0-9", "lower": "a-z", "upper": "A-Z",
    "space": " \\t\\n\\r\\f\\v", "xdigit": "0-9A-Fa-f", "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}


def _class_end(text: str, i: int) -> int:
    """Pure: the index of the `]` closing the bracket expression opened at `text[i]`, or -1
    (a `]` first in the set is a member; `[:alpha:]` classes are skipped over)."""
    j = i + 1
    if text[j:j + 1] in ("!", "^"):
        j += 1
    if text[j:j + 1] == "]":
        j += 1
    while j < len(text):
        if text.startswith("[:", j) and ":]" in text[j + 2:]:
            j = text.index(":]", j + 2) + 2
        elif text[j] == "]":
            return j
        else:
            j += 1
    return -1


def _class(body: str) -> str:
    """Pure: the inside of a bracket expression as a Python regex set."""
    negate = body[:1] in ("!", "^")
    body = body[1:] if negate else body
    out, j = "", 0
    while j < len(body):
        if body.startswith("[:", j) and ":]" in body[j + 2:]:
            end = body.index(":]", j + 2)
            out += POSIX_CLASSES.get(body[j + 2:end], "")
            j = end + 2
        else:
            out += "\\" + body[j] if body[j] in "[]" and j else body[j]
            j += 1
    return "[" + ("^" if negate else "") + out + "]"


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
            out += _class(text[i + 1:end])
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
    try:
        return Rule(re.compile(("" if anchored else "(?:.*/)?") + rx + r"\Z"), negate, folders_only)
    except re.error:   # e.g. a backwards range [z-a]: matches nothing, as in git
        return None


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
