"""Saved plans (`mlctl plan --out FILE`, `mlctl apply FILE`): the plan file format `mlctl.planfile/v2`
(schema: mlctl/schemas/planfile.schema.json), its own format, separate from the `--json` view, which
loading never reads.

A plan file holds the plan's changes (address, action, reason, diff items, changed files, the
after-unknown list, the digest of each resource it creates or updates: see `saved_changes`), the
destroy and refresh-only flags, the mlctl version, and a **binding**: the state's lineage and serial,
the project root, the runtime the plan moves resources to, and the sha256 of every input (each config
file and every file it references).
`load_plan` refuses a plan that anything moved under, naming what moved.

Values: a plan file stores no attribute values; apply takes them from the configuration and state,
which the binding proves unchanged. Storing them masked would not spare that (a masked value cannot be
applied, so apply would still restore it from the configuration) and masking by name misses secrets
such as a URL's credentials; not storing them means a plan file holds no secret to mask at all.

Written 0600 through a temporary file renamed into place (`write_atomic`); a symbolic link at the path
is refused, never written through.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from mlctl import __version__
from mlctl.errors import Diagnostic, MlctlError
from mlctl.reconciler.plans import Action, Plan, applied_resources, ignored_fields, path_attributes
from mlctl.reconciler.saved_changes import Mismatch, Recorded, read_action, read_change, write_change
from mlctl.overrides import is_override_input
from mlctl.resources import Address
from mlctl.privatefiles import write_atomic

FORMAT = "mlctl.planfile/v2"
REMAKE = "Make a new plan with `mlctl plan --out FILE`, review it, then `mlctl apply FILE`."


def _key(path: str, root: str | None) -> str:
    """Input paths are stored relative to the project root (portable to another checkout)."""
    if root and path.startswith(root.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, root)
    return path


def plan_file_document(plan: Plan, root: str | None = None) -> dict:
    """Pure: the JSON document a plan file holds for `plan` (no attribute values, so no secrets)."""
    return {
        "format_version": FORMAT,
        "mlctl_version": __version__,
        "binding": {
            "lineage": plan.lineage,
            "serial": plan.serial,
            "root": root,
            "runtime": plan.runtime,
            "inputs": {_key(p, root): d for p, d in sorted(plan.inputs.items())},
        },
        "destroy": plan.destroy,
        "refresh_only": plan.refresh_only,
        "changes": [write_change(c) for c in plan.changes],
    }


def save_plan(plan: Plan, path: str | os.PathLike, root: str | None = None) -> None:
    """Write `plan` to `path`: atomically, mode 0600, never through a symbolic link.
    `root`: the project folder; inputs under it are stored relative."""
    path = Path(path)
    data = (json.dumps(plan_file_document(plan, root), indent=1) + "\n").encode()
    try:
        _write_private(path, data)
    except OSError as e:
        raise MlctlError(
            Diagnostic(
                f"cannot write the plan to {path}: {e.strerror or e}",
                "Name a file in a folder that exists and is writable (--out FILE).",
                file=str(path),
                field="--out",
            )
        ) from None


def _write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, mode 0600 (`write_atomic`: a temp file renamed over it); MlctlError
    if `path` is a symbolic link: refused rather than replaced, so the user learns what was there."""
    if path.is_symlink():
        raise MlctlError(
            Diagnostic(
                f"{path} is a symbolic link; mlctl does not write a plan through one",
                "Name a regular file (--out FILE), or remove the link.",
                file=str(path),
                field="--out",
            )
        )
    write_atomic(path, data, mode=0o600)


def _refuse(path: Path, summary: str, detail: str = REMAKE) -> MlctlError:
    return MlctlError(Diagnostic(summary, detail, file=str(path)))


MAX_PLAN_BYTES = 256 * 2**20  # a plan file larger than this is not one mlctl wrote


def plan_bytes(path: str | os.PathLike) -> bytes:
    """The saved plan's bytes: read only from a regular file (a FIFO or a device is refused at once, never
    waited on; apply calls this before it takes the state lock), MlctlError naming the file otherwise."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _refuse(path, "no such saved plan", "Make one with `mlctl plan --out FILE`.") from None
    except OSError as e:
        raise _refuse(path, f"cannot read the saved plan: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, "the saved plan is not a regular file (a FIFO, a device or a folder)")
        if info.st_size > MAX_PLAN_BYTES:
            raise _refuse(path, f"the saved plan is {info.st_size} bytes, larger than any plan mlctl writes")
        return f.read(MAX_PLAN_BYTES + 1)


def _read(path: Path) -> dict:
    """The plan file's document: a v2 plan file valid against its schema, or MlctlError naming the file."""
    data = plan_bytes(path)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # not UTF-8, not JSON: truncated, or not a plan file
        raise _refuse(path, f"cannot read the saved plan: it is not complete JSON ({e})") from None
    fmt = doc.get("format_version") if isinstance(doc, dict) else None
    if fmt != FORMAT:
        raise _refuse(
            path, _not_ours(fmt, doc), f"This mlctl ({__version__}) reads and writes {FORMAT} only. " + REMAKE
        )
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    from mlctl.schemas.validate import load_schema

    error = best_match(Draft202012Validator(load_schema("planfile")).iter_errors(doc))
    if error is not None:
        raise _refuse(path, f"the saved plan is malformed at {error.json_path}: {error.message}")
    return doc


def _not_ours(fmt, doc) -> str:
    """Pure: what a file with another format_version is."""
    if isinstance(fmt, str) and fmt.startswith("mlctl.planfile/"):
        by = doc.get("mlctl_version")
        return f"the saved plan has format {fmt}" + (f" (written by mlctl {by})" if isinstance(by, str) else "")
    if isinstance(fmt, str) and fmt.startswith("mlctl.plan/"):  # render_json's FORMAT, any version
        return "this is the `mlctl plan --json` view, not a saved plan"
    return "not a saved mlctl plan" + (f" (format_version {fmt!r})" if fmt is not None else "")


def moved(binding: dict, state, inputs: dict[str, str], root: str | None, runtime: str | None = None) -> list[str]:
    """Pure: what changed since the plan was made (empty when it is still current). `runtime`: the
    project's runtime now (None: not compared)."""
    out = []
    if binding["lineage"] != state.lineage and (binding["serial"] or state.serial):
        out.append(f"the state is another one (lineage {state.lineage}, the plan was made for {binding['lineage']})")
    elif binding["serial"] != state.serial:
        out.append(f"the state moved from serial {binding['serial']} to {state.serial} (an apply ran since)")
    then_runtime = binding.get("runtime")
    if runtime is not None and then_runtime is not None and runtime != then_runtime:
        out.append(f"the project's runtime is now {runtime} (the plan was made for the {then_runtime} runtime)")
    now = {_key(p, root): d for p, d in inputs.items()}
    then = binding["inputs"]
    for p in sorted(set(then) | set(now)):
        if is_override_input(p):  # `--set PATH` / `--var NAME`: given to plan, to be given to apply alike
            if p not in now:
                out.append(f"the plan was made with {p}=...: give it to apply too")
            elif p not in then:
                out.append(f"{p}=... was not given when the plan was made")
            elif then[p] != now[p]:
                out.append(f"{p} has another value than when the plan was made")
        elif p not in now:
            out.append(f"{p} was removed or is no longer read")
        elif p not in then:
            out.append(f"{p} is new")
        elif then[p] != now[p]:
            out.append(f"{p} changed")
    return out


def _changes(path: Path, entries: list[dict], recorded: dict, want: dict) -> list:
    """The saved changes, their values taken from the state (`recorded`) and configuration (`want`),
    both keyed by Address."""
    exclude = path_attributes()
    changes, seen = [], set()
    for entry in entries:
        a = entry["address"]
        try:
            address = Address.parse(a)
            if address in seen:
                raise Mismatch("the plan has two changes for it")
            seen.add(address)
            action = read_action(entry)
            rec = Recorded(
                action,
                recorded.get(address),
                want.get(address) if action is not Action.DELETE else None,
                exclude.get(address.kind.value, ()),
            )
            changes.append(read_change(entry, rec))
        except Mismatch as e:
            raise MlctlError(
                Diagnostic(
                    f"the saved plan does not match the configuration or state at {a}: {e}",
                    REMAKE,
                    file=str(path),
                    address=a,
                )
            ) from None
        except ValueError as e:  # an action, reason or address this mlctl does not know
            raise _refuse(path, f"the saved plan is malformed at {a}: {e}") from None
    return changes


def load_plan(path: str | os.PathLike, state, config, root: str | None = None, *, runtime: str | None = None) -> Plan:
    """The saved plan at `path`, checked against the current `state` and `config` (a loaded Config).
    `root`: the project folder (default: the folder the plan was made in); inputs are compared relative to it.
    `runtime`: the project's runtime now; a plan made for another is stale (None: not compared).

    Raises MlctlError naming the file: not a v2 plan file, malformed, or stale (listing everything that
    moved: lineage, serial, each changed file), or a change the configuration or state cannot give back.
    """
    path = Path(path)
    doc = _read(path)
    if root is None:  # the folder it was made in (pass the project root to apply from another checkout)
        root = doc["binding"]["root"]
    refresh_only = doc["refresh_only"]
    inputs = {} if refresh_only else dict(config.inputs)  # a drift plan is bound to the state alone
    stale = moved(doc["binding"], state, inputs, root, runtime)
    if stale:
        first, *rest = stale
        raise MlctlError(
            Diagnostic(
                f"the saved plan is stale: {first}",
                "make a new plan (`mlctl plan --out FILE`) and review it.",
                file=str(path),
            ),
            *(Diagnostic(f"the saved plan is stale: {m}", file=str(path)) for m in rest),
        )
    recorded = state.resources
    want = {r.address: r for r in (applied_resources(state) if refresh_only else config.resources)}
    changes = _changes(path, doc["changes"], recorded, want)
    missing = (set(recorded) if doc["destroy"] else set(want) | set(recorded)) - {c.address for c in changes}
    if missing:
        raise MlctlError(
            Diagnostic(
                f"the saved plan does not match the configuration or state: it has no change "
                f"for {', '.join(sorted(str(a) for a in missing))}",
                REMAKE,
                file=str(path),
            )
        )
    if refresh_only:
        return Plan(tuple(changes), state.lineage, state.serial, refresh_only=True)
    return Plan(
        tuple(changes),
        state.lineage,
        state.serial,
        dict(config.inputs),
        doc["destroy"],
        tuple(d for d in config.diagnostics if d.severity != "error"),
        ignored_fields(config, want, doc["destroy"]),
        runtime=doc["binding"]["runtime"],
    )
