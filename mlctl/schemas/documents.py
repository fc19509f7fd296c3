"""Documents: one YAML file read with a line for every field, so every error can name file, line and field."""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mlctl.errors import Diagnostic

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same nodes and marks, faster
Path_ = tuple  # a field path: mapping keys (str) and list indices (int)


# The folder file names are shown relative to: the project folder (`-C DIR` means "as if started
# in DIR"); load_config sets it for the duration of a load.
DISPLAY_ROOT: contextvars.ContextVar[str | None] = contextvars.ContextVar("DISPLAY_ROOT", default=None)


def show_path(path: Path) -> str:
    """The path as the user should read it: relative to the project folder (or the working
    directory), unless that climbs more than two folders up; then absolute."""
    root = DISPLAY_ROOT.get() or os.getcwd()
    text = str(path)
    if text.startswith(root) and text[len(root) : len(root) + 1] == os.sep and _plain_path(root) and _plain_path(text):
        return text[len(root) + 1 :]  # what relpath answers for a path inside the root, without its cost
    try:
        rel = os.path.relpath(path, root)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith(os.path.join("..", "..", "..")) else rel


@lru_cache(maxsize=16384)
def _plain_path(text: str) -> bool:
    """Pure: is `text` an absolute path that normpath leaves as it is (no '.', '..', '//' or trailing '/')?"""
    return os.path.isabs(text) and os.path.normpath(text) == text


def format_field(path: Path_) -> str:
    """Pure: ('deployments', 0, 'model', 'path') -> 'deployments[0].model.path'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@dataclass
class Document:
    """A parsed YAML file: its data and the 1-based line of every key and list item."""

    path: Path  # absolute
    data: Any
    text: str
    lines: dict[Path_, int] = field(default_factory=dict)
    digest: str = ""  # sha256 hex of the text (as read from the file)

    @property
    def display(self) -> str:
        return show_path(self.path)

    @property
    def base(self) -> Path:
        """The folder paths in this file are relative to."""
        return self.path.parent

    def line(self, path: Path_) -> int:
        """The line of the field at `path`, or of its closest ancestor that exists."""
        key = tuple(str(p) if not isinstance(p, int) else p for p in path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)

    def at(self, path: Path_, **extra) -> dict:
        """Keyword arguments locating a Diagnostic at `path`: file, line and field."""
        return {"file": self.display, "line": self.line(path), "field": format_field(path) or None, **extra}

    def get(self, path: Path_, default=None):
        node = self.data
        for p in path:
            try:
                node = node[p]
            except (KeyError, IndexError, TypeError):
                return default
        return node


def read_document(path: Path, cache=None, variables=None) -> tuple[Document | None, list[Diagnostic]]:
    """Read and parse one YAML file. Problems (unreadable, syntax, duplicate keys) come back as diagnostics.
    `cache`: a DocumentCache (mlctl.schemas.doccache) that answers for a text parsed before.
    `variables` (a configuration file's; None for another YAML, such as a conda file): the `--var` values to
    fill its placeholders with; when placeholders left make it unparsable, one error naming them all
    (mlctl.overrides) instead of the syntax error."""
    import hashlib

    shown = show_path(path)
    text, problems = read_config_text(path, shown)
    if text is None:
        return None, problems
    left = []
    if variables is not None:
        from mlctl.overrides import fill, unfilled

        text = fill(text, variables)
        left = unfilled(text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    cached = cache.get(digest) if cache is not None else None
    if cached is not None:
        return Document(path, cached[0], text, cached[1], digest), []
    doc, problems = _parse(path, shown, text)
    if doc is None and left:  # `{{NAME}}` is a YAML syntax error: say what it is instead
        from mlctl.overrides import unfilled_error

        return None, [unfilled_error(shown, left)]
    if doc is not None:
        doc.digest = digest
        if cache is not None and not problems:
            cache.put(digest, doc.data, doc.lines)
    return doc, problems


def _parse(path: Path, shown: str, text: str) -> tuple[Document | None, list[Diagnostic]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _count_values(node, MAX_VALUES) > MAX_VALUES:
            return None, [
                Diagnostic(
                    f"cannot read {shown}: it holds more than {MAX_VALUES:,} values",
                    "Split it or write it smaller: mlctl reads configuration files, not data.",
                    file=shown,
                )
            ]
        # no anchor (&), no alias: most files skip the walk
        problem, line = _alias_problem(node) if node is not None and "&" in text else (None, None)
        if problem:
            return None, [
                Diagnostic(
                    f"cannot read {shown}: {problem}",
                    "Write the values out: mlctl reads configuration files, not generated data.",
                    file=shown,
                    line=line,
                )
            ]
        data = loader.construct_document(node) if node is not None else None
    except (RecursionError, _TooDeep) as e:
        return None, [_too_deep(shown, e.args[0] if isinstance(e, _TooDeep) else None)]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(x for x in (e.context, e.problem) if x)
        if e.context_mark is not None and mark is not None and e.context_mark.line != mark.line:
            if mark.index >= len(text.rstrip()):
                mark = e.context_mark  # an unclosed bracket or quote: point at where it opened
            else:
                what += f" (the construct started at line {e.context_mark.line + 1})"
        return None, [
            Diagnostic(
                f"YAML syntax error: {what}",
                "Fix the YAML syntax (indentation, colons, quotes) at this line.",
                file=shown,
                line=mark.line + 1 if mark else None,
            )
        ]
    except yaml.YAMLError as e:
        return None, [Diagnostic(f"YAML error: {e}", "Fix the YAML syntax.", file=shown)]
    finally:
        loader.dispose()
    doc = Document(path, data, text)
    diags: list[Diagnostic] = []
    if node is not None:
        doc.lines[()] = node.start_mark.line + 1
        try:
            _map_lines(node, (), doc, diags)
        except _TooDeep as e:
            return None, [_too_deep(shown, e.args[0])]
    return doc, diags


def read_config_text(path: Path, shown: str) -> tuple[str | None, list[Diagnostic]]:
    """The UTF-8 text of a configuration file (a regular file of at most MAX_BYTES), or None and the
    one diagnostic that says why not (`shown` names the file in it). Used for YAML and v1 JSON alike."""
    try:
        return _read_config_bytes(path).decode("utf-8"), []
    except _NotConfig as e:
        return None, [Diagnostic(f"cannot read {shown}: {e.args[0]}", e.args[1], file=shown)]
    except UnicodeDecodeError as e:
        return None, [
            Diagnostic(f"cannot read {shown}: not UTF-8 text ({e.reason})", "Save the file as UTF-8.", file=shown)
        ]
    except OSError as e:
        return None, [
            Diagnostic(
                f"cannot read {shown}: {e.strerror or e}", "Check that the file exists and is readable.", file=shown
            )
        ]


MAX_DEPTH = 100  # nesting levels
MAX_EXPANSION = 100_000  # values a document holds once its aliases are expanded (beyond what it spells out)
MAX_BYTES = 1024 * 1024  # a configuration file's size (Azure ML YAML and conda files are a few KB)
MAX_VALUES = 100_000  # keys, items and scalars a document spells out


# The bytes of configuration files this plan read already (the plan memo hashes every file before the load):
# {path: bytes}, set by `reads_kept` for one plan; the load takes each once instead of reading the file again.
_KEPT: contextvars.ContextVar[dict[str, bytes] | None] = contextvars.ContextVar("_KEPT", default=None)


@contextlib.contextmanager
def reads_kept(kept: dict[str, bytes]):
    """While in the block, a read of configuration file P takes kept[P] (once) instead of reading P again: the
    plan is then made from the very bytes its memo key was made from. `kept` holds only regular files of at most
    MAX_BYTES, read just before."""
    token = _KEPT.set(kept)
    try:
        yield
    finally:
        _KEPT.reset(token)


class _NotConfig(Exception):
    """Raised with (what is wrong, what to do) for a file mlctl will not parse as configuration."""


def _read_config_bytes(path: Path) -> bytes:
    """The bytes of a configuration file: a regular file of at most MAX_BYTES (a FIFO or a device is
    refused, never waited on or read without end). _NotConfig otherwise; OSError when unreadable."""
    kept = _KEPT.get()
    if kept and (data := kept.pop(str(path), None)) is not None:
        return data
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotConfig(
                "it is not a regular file (a FIFO, device or socket)",
                "Name a YAML file; mlctl does not read configuration from special files.",
            )
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _NotConfig(
            f"it is larger than {MAX_BYTES // 1024 // 1024} MiB",
            "Configuration files are small: split it, or move data out of it (models and "
            "code are referenced by path, not included).",
        )
    return data


def _count_values(root: yaml.Node, limit: int) -> int:
    """Pure: how many nodes a composed document holds (keys, items, scalars; an alias counts once),
    counting stops past `limit`."""
    count, stack, seen = 0, [root], set()
    while stack and count <= limit:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        count += 1
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return count


class _Recursive(Exception):
    pass


class _TooDeep(Exception):
    """Raised with the line where nesting passes MAX_DEPTH."""


def _too_deep(shown: str, line: int | None) -> Diagnostic:
    return Diagnostic(
        f"cannot read {shown}: it is nested more than {MAX_DEPTH} levels deep",
        "Flatten the YAML: no configuration needs that many levels.",
        file=shown,
        line=line,
    )


def _alias_problem(root: yaml.Node) -> tuple[str | None, int | None]:
    """Pure: why a composed YAML document's aliases make it unreadable as configuration (an alias
    inside its own anchor, aliases expanding past MAX_EXPANSION values) and the line, or (None, None)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _Recursive(node.start_mark.line + 1)
        if depth > MAX_DEPTH:
            raise _TooDeep(node.start_mark.line + 1)
        active.add(key)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        sizes[key] = 1 + sum(size(c, depth + 1) for c in children)
        active.discard(key)
        return sizes[key]

    try:
        total = size(root, 0)
    except _Recursive as e:
        return "an alias refers to the anchor it is inside (a recursive structure)", e.args[0]
    if total - len(sizes) > MAX_EXPANSION:
        return f"its aliases expand to {total:,} values", root.start_mark.line + 1
    return None, None


def _map_lines(node: yaml.Node, path: Path_, doc: Document, diags: list[Diagnostic]) -> None:
    if len(path) > MAX_DEPTH:
        raise _TooDeep(node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in seen:
                diags.append(
                    Diagnostic(
                        f"duplicate key '{key}' (first at line {seen[key]})",
                        "Remove one of them: YAML keeps only the last, which is rarely what was meant.",
                        file=doc.display,
                        line=line,
                        field=format_field(path + (key,)),
                    )
                )
            seen[key] = line
            doc.lines[path + (key,)] = line
            _map_lines(value_node, path + (key,), doc, diags)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[path + (i,)] = item.start_mark.line + 1
            _map_lines(item, path + (i,), doc, diags)
