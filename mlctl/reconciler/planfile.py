"""Saved plans (`mlctl plan --out FILE`): a JSON file bound to the state (lineage, serial) and to the
digest of every config and artifact file, so `apply FILE` refuses a plan that anything moved under.

Holds no secrets: attribute values are not stored; they come back from the (unchanged) config and state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlctl import __version__
from mlctl.errors import Diagnostic, MlctlError
from mlctl.reconciler.diff import diff_attributes
from mlctl.reconciler.plans import Action, Change, Plan, Reason, path_attributes
from mlctl.reconciler.render_json import plan_document
from mlctl.resources import Address
from mlctl.state.statefile import write_atomic

FORMAT = "mlctl.planfile/v1"


def _key(path: str, root: str | None) -> str:
    """Input paths are stored relative to the project root (portable to another checkout)."""
    if root and path.startswith(root.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, root)
    return path


def save_plan(plan: Plan, path: str | os.PathLike, root: str | None = None) -> None:
    """Write `plan` to `path` (atomically). `root`: the project folder; inputs under it are stored relative."""
    doc = {
        "format_version": FORMAT,
        "mlctl_version": __version__,
        "binding": {
            "lineage": plan.lineage,
            "serial": plan.serial,
            "root": root,
            "inputs": {_key(p, root): d for p, d in sorted(plan.inputs.items())},
        },
        "destroy": plan.destroy,
        "plan": plan_document(plan, root),
    }
    try:
        write_atomic(Path(path), (json.dumps(doc, indent=1) + "\n").encode(), mode=0o644)
    except OSError as e:
        raise MlctlError(Diagnostic(f"cannot write the plan to {path}: {e.strerror or e}",
                                    "Name a file in a folder that exists and is writable (--out FILE).",
                                    file=str(path), field="--out")) from None


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlctlError(Diagnostic("no such saved plan", "make one with `mlctl plan --out FILE`.", file=str(path))) from None
    except (OSError, ValueError) as e:
        raise MlctlError(Diagnostic(f"cannot read the saved plan: {e}",
                                    "Make a new one with `mlctl plan --out FILE`.", file=str(path))) from None
    if not isinstance(doc, dict) or doc.get("format_version") != FORMAT:
        raise MlctlError(Diagnostic(
            f"not a saved mlctl plan (expected format_version {FORMAT!r})",
            "make one with `mlctl plan --out FILE`.", file=str(path)))
    return doc


def moved(binding: dict, state, inputs: dict[str, str], root: str | None) -> list[str]:
    """Pure: what changed since the plan was made (empty when it is still current)."""
    out = []
    if binding["lineage"] != state.lineage and (binding["serial"] or state.serial):
        out.append(f"the state is another one (lineage {state.lineage}, the plan was made for {binding['lineage']})")
    elif binding["serial"] != state.serial:
        out.append(f"the state moved from serial {binding['serial']} to {state.serial} (an apply ran since)")
    now = {_key(p, root): d for p, d in inputs.items()}
    then = binding["inputs"]
    for p in sorted(set(then) | set(now)):
        if p not in now:
            out.append(f"{p} was removed or is no longer read")
        elif p not in then:
            out.append(f"{p} is new")
        elif then[p] != now[p]:
            out.append(f"{p} changed")
    return out


def _diff(prior, resource, rc: dict, exclude) -> tuple:
    """The change's diff: recomputed from the (unchanged) state and config, so masked values come back
    as they are; drift items (runtime observations, no secrets) as saved."""
    drift = tuple((d["op"], d["path"], d["old"], d["new"]) for d in rc["diff"] if d["op"] == "drift")
    if prior is None or resource is None or not rc["diff"]:
        return drift
    return diff_attributes(prior.attributes, resource.attributes, exclude.get(resource.kind.value, ())) + drift


def load_plan(path: str | os.PathLike, state, config, root: str | None = None) -> Plan:
    """The saved plan at `path`, checked against the current `state` and `config` (a loaded Config).
    `root`: the project folder (default: the folder the plan was made in); inputs are compared relative to it.

    Raises MlctlError listing everything that moved (lineage, serial, each changed file) when it is stale.
    """
    path = Path(path)
    doc = _read(path)
    if root is None:  # the folder it was made in (pass the project root to apply from another checkout)
        root = doc["binding"].get("root")
    stale = moved(doc["binding"], state, dict(config.inputs), root)
    if stale:
        first, *rest = stale
        raise MlctlError(
            Diagnostic(f"the saved plan is stale: {first}",
                       "make a new plan (`mlctl plan --out FILE`) and review it.", file=str(path)),
            *(Diagnostic(f"the saved plan is stale: {m}", file=str(path)) for m in rest))
    want = {str(r.address): r for r in config.resources}
    exclude = path_attributes()
    changes = []
    for rc in doc["plan"]["resource_changes"]:
        a, action = rc["address"], Action(rc["symbol"])
        prior = state.resources.get(a)
        resource = want.get(a) if action is not Action.DELETE else None
        if (action is not Action.DELETE and resource is None) or (action is not Action.CREATE and prior is None):
            raise MlctlError(Diagnostic(f"the saved plan does not match the configuration or state at {a}",
                                        "make a new plan.", file=str(path)))
        changes.append(Change(
            Address.parse(a), action, Reason(rc["reason"]) if rc["reason"] else None,
            dict(prior.attributes) if prior and action is not Action.CREATE else None,
            dict(resource.attributes) if resource else None,
            tuple(rc["after_unknown"]), _diff(prior, resource, rc, exclude),
            {k: tuple(v) for k, v in rc["changed_files"].items()} if any(rc["changed_files"].values()) else {},
            resource))
    ignored = {a: tuple(f) for a, f in config.ignored.items() if a in want and f} if not doc["destroy"] else {}
    return Plan(tuple(changes), state.lineage, state.serial, dict(config.inputs), doc["destroy"],
                tuple(d for d in config.diagnostics if d.severity != "error"), ignored)
