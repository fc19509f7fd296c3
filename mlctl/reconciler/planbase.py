"""Plan base: what the last full `mlctl plan --refresh=false` was made from and what it made, so that a plan after
an edit of a few deployment files makes only those deployments again (and what depends on them) and takes the rest
as it was: `<data_dir>/planbase.pickle`, signed with the user's key (mlctl.signedfiles) as the plan memo is.

The plan memo (mlctl.reconciler.planmemo) prints a plan again when nothing changed; the base serves the next case,
an edit. It holds, from one full plan: the configuration (mlctl.schemas.load.Config), the state it was planned
against, the plan, the builder's registered models and environments and folder digests, and for each standalone
deployment file the address it declares. It is used only when all of these hold, else the plan is made in full:
- the memo's key but the configuration's bytes and the output format is the same (mlctl itself, the installed
  packages, the command, the state file's bytes, the project file, the folders, the boundary);
- the same configuration files (none added or removed), at most MAX_EDITED of them with other bytes, each of these
  a standalone deployment file in the base and still one: read without a problem, not by its shape, with no
  placeholder;
- every file and folder the base's load looked at on disk has the same fingerprint (planmemo.fingerprint);
- the base's load met no cross-file problem (a duplicate name, traffic) and no diagnostic in an edited file;
- each edited deployment, normalized and built by the functions the full load runs, has no problem and the same
  address, dependencies, files and code folder as before, and no model or environment was first declared inline in
  its file: the graph, the hashed files and every other resource are then the full load's too.
Then the edited deployments' resources replace theirs, and plan()'s decision for one resource
(plans.decide_change) is made again for them and for every resource that depends on them; every other change is
the base plan's. Anything else (a model, environment, endpoint or project file edited, a file added or removed, a
state written by an apply, a hostile or foreign base) makes the plan in full, which writes a new base when the
plan memo keeps that plan.

Never believed blindly: the file is unpickled only after its signature verifies with the user's key (a pull request
can commit `.mlctl/` but cannot sign), and then with only mlctl's own classes allowed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

FILE = "planbase.pickle"
FORMAT = 2  # 2: addresses, attributes, files and digests shared (planbasefile.shared)
MAX_BYTES = 512 * 1024 * 1024
MAX_EDITED = 64


def keep(memo, config, state, result, built: dict) -> bool:
    """Write the base of a full plan the memo kept (`built`: what mlctl.schemas.load.BUILT collected), when this
    folder was planned before (a fresh clone's one plan does not pay for it). The changes are kept without their
    before and after values, which are the state's and the resources' attributes (checked here) and are copied
    again when read. Effect by mlctl.signedfiles.write_signed. Returns whether it was written."""
    from mlctl.reconciler.planbasefile import compact, pickled, shared
    from mlctl.resources import Address, Kind
    from mlctl.signedfiles import write_signed
    from mlctl.schemas.specs import Specs

    if not memo.existed or memo.backend is not None or memo.options.get("destroy") or memo.options.get("replace"):
        return False
    if not built or built.get("checks") or config.has_errors():
        return False
    changes = compact(result.changes, config, state)
    if changes is None:
        return False
    config, state = shared(config, state)
    specs = built["specs"]
    want = {r.address: r for r in config.resources}
    deployments = {}  # path -> (address, file name as the load showed it) of each standalone deployment file
    for d in specs.deployments:
        address = Address(Kind.DEPLOYMENT, f"{d.endpoint}.{d.name}")
        data = d.where.doc.data
        if not d.where.path and isinstance(data, dict) and {"kind", "$schema"} & set(data) and address in want:
            deployments[str(d.where.doc.path)] = (want[address].address, want[address].source.file)
    flags = Specs(incomplete=specs.incomplete, explicit=specs.explicit, invalid=specs.invalid)
    body = {
        "config": config,
        "state": state,
        "plan": dataclasses.replace(result, changes=()),
        "changes": changes,
        "deployments": deployments,
        "specs": flags,
        "assets": built["assets"],
        "trees": built["trees"],
    }
    header = {"format": FORMAT, "context": memo.context, "digests": memo.digests, "roots": memo.roots}
    payload = json.dumps(header, separators=(",", ":")).encode() + b"\n" + pickled(body)
    if len(payload) > MAX_BYTES - 100:
        return False
    write_signed(Path(memo.project.data_dir) / FILE, memo.user_key, payload, "plan base")
    return True


def _read(memo) -> tuple[dict, bytes] | None:
    """(header, pickled body) of this user's base for the memo's context; None for anything else."""
    from mlctl.signedfiles import read_signed

    payload = read_signed(Path(memo.project.data_dir) / FILE, memo.user_key, MAX_BYTES, "plan base")
    if payload is None:
        return None
    head, _, body = payload.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("context") != memo.context:
        return None
    if not isinstance(header.get("digests"), dict) or not isinstance(header.get("roots"), dict):
        return None
    return header, body


def remade(memo, probed: set):
    """(config, state, plan) made from the base and the edited deployment files, exactly the full plan's; None when
    the base cannot serve (see the module's docstring). `probed`: the paths looked at on disk are added to it."""
    from mlctl.reconciler.planmemo import fingerprint

    if memo.backend is not None or memo.options.get("destroy") or memo.options.get("replace"):
        return None
    found = _read(memo)
    if found is None:
        return None
    header, body = found
    digests = header["digests"]
    if set(digests) != set(memo.digests):
        return None
    edited = [p for p, d in memo.digests.items() if digests[p] != d]
    if len(edited) > MAX_EDITED:
        return None
    for path, fp in header["roots"].items():
        if fingerprint(path) != fp:
            return None
    from mlctl.reconciler.planbasefile import expanded, unpickled

    try:
        base = unpickled(body)
    except Exception:  # noqa: BLE001 - signed by this user's key, so only another mlctl's layout gets here
        return None
    if not isinstance(base, dict) or any(p not in base["deployments"] for p in edited):
        return None
    probed.update(header["roots"])
    config = base["config"]
    shown = {base["deployments"][p][1] for p in edited}
    if any(d.file in shown for d in config.diagnostics):
        return None
    from mlctl.schemas.documents import DISPLAY_ROOT

    token = DISPLAY_ROOT.set(str(memo.project.root))  # file names as load_config shows them
    try:
        built = _built(memo, base, edited)
    finally:
        DISPLAY_ROOT.reset(token)
    if built is None:
        return None
    from mlctl.schemas.load import ignored_of

    made, before = built[0], {r.address: r for r in config.resources if r.address in built[0]}
    resources = tuple(made.get(r.address, r) for r in config.resources)
    same_ignored = all(made[a].ignored == before[a].ignored for a in made)  # then load's ignored_of is the same
    config = dataclasses.replace(
        config,
        resources=resources,
        inputs={**config.inputs, **built[1]},
        ignored=config.ignored if same_ignored else ignored_of(resources, config.project_settings.runtime),
    )
    plan = dataclasses.replace(base["plan"], changes=expanded(base["changes"], base["config"], base["state"]))
    result = replan(plan, config, base["state"], set(made), same_ignored)
    return None if result is None else (config, base["state"], result)


def _built(memo, base: dict, edited: list[str]) -> tuple[dict, dict] | None:
    """({address: resource}, {path: input digest}) of the edited deployment files, read, normalized and built as the
    full load does; None when one of them is not the same deployment with the same graph and files."""
    from mlctl.boundary import project_boundary
    from mlctl.digests import HashCache
    from mlctl.overrides import may_hold_placeholders, placeholders_in
    from mlctl.schemas.build import Builder
    from mlctl.schemas.discovery import read_one
    from mlctl.schemas.normalize import add_document
    from mlctl.schemas.specs import Specs

    project, config = memo.project, base["config"]
    settings = config.project_settings
    before = {r.address: r for r in config.resources}
    builder = Builder(
        base["specs"],
        HashCache(),
        [],
        resources=dict(before),
        assets=base["assets"],
        trees=base["trees"],
        runtime=settings.runtime,
        boundary=str(project.boundary) if project.boundary else project_boundary(project.root),
        listen=settings.listen,
    )
    specs, inputs = [], {}
    for path in edited:
        diags: list = []
        docs: list = []
        shaped: list = []
        if read_one(project, Path(path), None, diags, docs, [], shaped) or diags or shaped or len(docs) != 1:
            return None
        doc, kind = docs[0]
        if kind != "deployment" or (may_hold_placeholders(doc.text) and placeholders_in(doc.data)):
            return None
        read = Specs()
        add_document(doc, kind, read, diags)
        if diags or len(read.deployments) != 1 or any(read.invalid.values()):
            return None
        spec = read.deployments[0]
        address, shown = base["deployments"][path]
        if spec.code is None or str(address) != f"deployment.{spec.endpoint}.{spec.name}":
            return None  # an MLflow model's no-code deployment makes an environment of its own
        if any(r.source is not None and r.source.file == shown and r.address != address for r in before.values()):
            return None  # a model or environment declared inline here first: its lines are this file's
        del builder.resources[address]
        specs.append((address, spec))
        inputs[str(doc.path)] = "sha256:" + doc.digest
    made = {}
    for address, spec in specs:
        builder.build_deployment(spec)
        new, old = builder.resources.get(address), before[address]
        if new is None or new.depends_on != old.depends_on or dict(new.files) != dict(old.files):
            return None
        if new.attributes.get("code") != old.attributes.get("code"):
            return None
        made[address] = new
    if builder.diags or builder.inputs:
        return None
    return made, inputs


def replan(before, desired, prior, edited: set, same_ignored: bool = False):
    """Pure: plan() of `desired` against `prior` without refresh, from `before` (that plan for the same graph and
    state, another version of the `edited` resources): their changes and those of every resource that depends on
    them are decided again (plans.decide_change), in the plan's order; None when one of them now has an error.
    `same_ignored`: desired.ignored is the one `before` was made from (its ignored fields are kept)."""
    from mlctl.reconciler.actions import Action
    from mlctl.reconciler.plans import decide_change, decided_action, ignored_fields, path_attributes

    users: dict = {}
    for r in desired.resources:
        for d in r.depends_on:
            users.setdefault(d, []).append(r.address)
    again, todo = set(), list(edited)
    while todo:
        a = todo.pop()
        if a not in again:
            again.add(a)
            todo.extend(users.get(a, ()))
    changes = list(before.changes)
    where = {c.address: i for i, c in enumerate(changes)}
    want = {r.address: r for r in desired.resources}
    if any(a not in where or a not in want for a in again):
        return None

    def decided(a):
        i = where.get(a)
        return None if i is None or changes[i].action is Action.DELETE else decided_action(changes[i])

    exclude = path_attributes()
    for a in sorted(again, key=where.__getitem__):
        change, immutable = decide_change(
            want[a], prior.resources.get(a), None, decided, False, before.runtime, exclude
        )
        if immutable is not None:
            return None
        changes[where[a]] = change
    ignored = before.ignored if same_ignored else ignored_fields(desired, want, False)
    return dataclasses.replace(before, changes=tuple(changes), inputs=dict(desired.inputs), ignored=ignored)
