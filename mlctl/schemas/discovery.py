"""Discovery: which YAML files make up a project's configuration, and the kind of each."""

from __future__ import annotations

import os
from pathlib import Path

from mlctl.errors import Diagnostic, Severity
from mlctl.overrides import may_hold_placeholders, placeholders_in, unfilled_error
from mlctl.projectpaths import Project
from mlctl.projectfile import FILE_NAMES, is_project_file
from mlctl.schemas.documents import Document, read_document, show_path
from mlctl.schemas.readahead import ReadAhead
from mlctl.schemas.validate import KINDS, did_you_mean

# The last part of a `$schema` URL (lower case, without .schema.json) -> kind.
SCHEMA_KINDS = {
    "managedonlineendpoint": "endpoint",
    "managedonlinedeployment": "deployment",
    "kubernetesonlineendpoint": "endpoint",  # the same YAML, served on an Azure Arc Kubernetes cluster
    "kubernetesonlinedeployment": "deployment",
    "model": "model",
    "environment": "environment",
}


def kind_from_schema_url(url: str) -> str | None:
    """Pure: the kind a `$schema` URL names, e.g. .../managedOnlineEndpoint.schema.json -> 'endpoint'."""
    last = url.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in (".schema.json", ".json"):
        last = last.removesuffix(suffix)
    return SCHEMA_KINDS.get(last)


def shape_kind(data: dict) -> tuple[str, str] | None:
    """Pure: (kind, why) for a file without `$schema` or `kind:` whose shape leaves no doubt, as the Azure CLI
    knows the kind from its command (`az ml online-deployment create -f`): a Kubernetes deployment (`type:
    kubernetes` with `endpoint_name` and `model`) or an endpoint naming its compute (`compute` with
    `auth_mode`); None otherwise."""
    if data.get("type") == "kubernetes" and "endpoint_name" in data and "model" in data and "auth_mode" not in data:
        return "deployment", "type: kubernetes with endpoint_name and model"
    if "compute" in data and "auth_mode" in data and not {"endpoint_name", "model"} & set(data):
        return "endpoint", "compute with auth_mode"
    return None


def _guess(data: dict) -> str:
    """Pure: a hint for a YAML file that declares no kind but looks like one."""
    if "endpoint_name" in data or "code_configuration" in data:
        guess = "deployment"
    elif "auth_mode" in data or "traffic" in data or "deployments" in data:
        guess = "endpoint"
    elif "dependencies" in data or "channels" in data:
        return ""
    elif "conda_file" in data or "image" in data:
        guess = "environment"
    elif "path" in data and "name" in data:
        guess = "model"
    else:
        return ""
    return f" (it looks like a {guess}: add 'kind: {guess}' or the Azure '$schema:' URL to read it)"


def detect_kind(doc: Document) -> tuple[str | None, Diagnostic | None]:
    """(kind, None) for an mlctl document; (None, a note or an error) otherwise.

    An explicit `kind:` naming no known kind is an error; a file with no known kind is a
    note (it is another tool's YAML, such as a conda file).
    """
    data = doc.data
    if not isinstance(data, dict):
        what = "empty" if data is None else "not a mapping"
        return None, Diagnostic(f"skipped {doc.display}: {what}, not an mlctl kind", severity="note")
    from_schema = kind_from_schema_url(data["$schema"]) if isinstance(data.get("$schema"), str) else None
    kind = data.get("kind")
    if kind is not None:
        if kind not in KINDS:
            return None, Diagnostic(
                f"unknown kind {kind!r}",
                f"Use one of: {', '.join(KINDS)}." + did_you_mean(str(kind), KINDS),
                **doc.at(("kind",)),
            )
        if from_schema and from_schema != kind:
            return None, Diagnostic(
                f"kind {kind!r} contradicts $schema, which names kind {from_schema!r}",
                "Remove 'kind:' or make it match the $schema URL.",
                **doc.at(("kind",)),
            )
        return kind, None
    if from_schema:
        return from_schema, None
    if "$schema" not in data and (shaped := shape_kind(data)) is not None:
        return shaped[0], None
    if "$schema" in data:
        why = f"$schema {str(data['$schema']).rsplit('/', 1)[-1]!r} is not a kind mlctl reads"
    else:
        why = "no $schema or kind" + _guess(data)
    return None, Diagnostic(f"skipped {doc.display}: {why}", severity="note")


def apply_overrides(project: Project, docs: list[tuple[Document, str]]) -> list[Diagnostic]:
    """Carry out each `--set` on the document it names (by file, else the one whose kind has the field);
    the errors for one that names no document, several, or a path that cannot be set."""
    from mlctl.overrides import set_value
    from mlctl.schemas.validate import load_schema

    problems = []
    for o in project.overrides.sets:
        if o.file is not None:
            wanted = (project.root / o.file).resolve()
            targets = [d for d, _ in docs if d.path == wanted or d.display == o.file]
            why = f"names {o.file!r}, which is not a configuration file read"
        else:
            targets = [d for d, k in docs if o.path[0] in load_schema(k).get("properties", {})]
            why = f"matches no document read: no endpoint, deployment, model or environment has {o.path[0]!r}"
        if len(targets) > 1:
            files = ", ".join(d.display for d in targets)
            problems.append(
                Diagnostic(
                    f"--set {o.text!r} matches several documents: {files}",
                    f"Name the file: --set {targets[0].display}:{o.text}.",
                    field="--set",
                )
            )
        elif not targets:
            problems.append(
                Diagnostic(f"--set {o.text!r} {why}", "Name a file given with -f or in the project.", field="--set")
            )
        elif (problem := set_value(targets[0].data, o.path, o.value)) is not None:
            problems.append(
                Diagnostic(f"--set {o.text!r}: {problem}", "Fix the path.", **targets[0].at(o.path, field="--set"))
            )
    return problems


def find_config_files(project: Project) -> list[Path]:
    """The files to read: the explicit -f files, else every *.yml / *.yaml directly in the project folder
    but the project file (mlctl.yaml)."""
    if project.files:
        return list(project.files)
    return [project.root / name for name in config_names(project)]


def config_paths(project: Project) -> list[str]:
    """find_config_files as strings, without making a Path of each (the plan memo's key: 7,500 files)."""
    if project.files:
        return [str(p) for p in project.files]
    folder = os.path.join(str(project.root), "")  # with its separator
    return [folder + name for name in config_names(project)]


def config_names(project: Project) -> list[str]:
    """The sorted names of the configuration files in the project folder (no -f)."""
    try:
        with os.scandir(project.root) as it:
            return sorted(
                e.name
                for e in it
                if e.name.endswith((".yml", ".yaml"))
                and not e.name.startswith(".")
                and e.name not in FILE_NAMES  # the project file (a name: no Path made per file)
                and _is_file(e)
            )
    except OSError:
        return []


def _is_file(entry: os.DirEntry) -> bool:
    """A directory entry that is a regular file or a link to one (as Path.is_file answers)."""
    try:
        return entry.is_file()
    except OSError:
        return False


def discover(project: Project, cache=None) -> tuple[list[tuple[Document, str]], list[Diagnostic], int]:
    """Read the project's config files: [(document, kind)], the diagnostics met on the way, and
    how many files could not be read or parsed (their declarations are unknown). `cache`: a
    DocumentCache for the files parsed before."""
    diags: list[Diagnostic] = []
    lookalikes: list[str] = []  # skipped files that look like ours (a kind: or $schema: line missing?)
    docs: list[tuple[Document, str]] = []
    shaped: list[str] = []  # files read by their shape (no $schema or kind), for one note
    if not project.files and not project.root.is_dir():
        shown = str(project.root)
        what = "is not a folder" if project.root.exists() else "does not exist"
        return [], [Diagnostic(f"project folder {shown} {what}", "Check the -C argument.", file=shown)], 0
    paths = find_config_files(project)
    ahead = ReadAhead.begin(paths, cache, project.overrides.variables)  # a cold load: half parsed by a child
    try:
        failed = _read_all(project, paths, cache, ahead, diags, docs, lookalikes, shaped)
    finally:
        if ahead is not None and not ahead.collected:
            ahead.collect(cache)  # reading stopped early: the child is still waited for
    if shaped:
        diags.append(
            Diagnostic(
                "read without $schema or kind, by their shape: " + "; ".join(shaped),
                "Add the Azure '$schema:' URL or 'kind:' to say so explicitly.",
                severity=Severity.NOTE,
            )
        )
    diags.extend(apply_overrides(project, docs))
    walk = bool(project.overrides.sets)  # a --set value is not in the text
    unfilled = [
        (doc, left)
        for doc, _ in docs
        if (walk or may_hold_placeholders(doc.text)) and (left := placeholders_in(doc.data))
    ]
    for doc, left in unfilled:  # placeholders a --set did not replace: the document is not read further
        diags.append(unfilled_error(doc.display, [(p, doc.line(path)) for p, path in left]))
    failed += len(unfilled)
    docs = [(d, k) for d, k in docs if all(d is not u for u, _ in unfilled)]
    if not docs and not failed and not any(d.severity == "error" for d in diags):
        where = str(project.root)
        from mlctl.state.backends import holds_state

        if not lookalikes and holds_state(project):
            # Something was applied (the state file, or the shared state: backends.holds_state): an empty
            # configuration plans its deletion (as Terraform does); apply still deletes an endpoint only
            # with --allow-destroy or from a --destroy plan.
            diags.append(
                Diagnostic(
                    f"no configuration found in {where}: planning with an empty configuration, so every "
                    "resource the state records is deleted",
                    "Put the YAML files back (or name them with -f) to keep what runs; `mlctl destroy` deletes it all.",
                    file=where,
                    severity="warning",
                )
            )
        else:
            diags.append(
                Diagnostic(
                    f"no configuration found in {where}" + "".join(f"; skipped {x}" for x in lookalikes),
                    "Put endpoint / deployment YAML files (with the Azure '$schema:' URL or 'kind:') in the "
                    "project folder, or name them with -f.",
                    file=where,
                )
            )
    return docs, diags, failed


def _read_all(project, paths, cache, ahead, diags, docs, lookalikes, shaped) -> int:
    """Read `paths` into `docs` (with their kinds), `diags`, `lookalikes` and `shaped` (discover's lists), taking
    the read-ahead child's documents into `cache` when the first of its files comes; returns how many files
    could not be read or parsed."""
    failed = 0
    for i, path in enumerate(paths):
        if ahead is not None and i == ahead.start:
            ahead.collect(cache)
        if is_project_file(path):  # named with -f
            diags.append(
                Diagnostic(
                    f"{show_path(path)} is the project file (the runtime and its settings), not configuration",
                    f"Leave it out of -f: mlctl reads {path.name} in the project folder (-C DIR) by itself; "
                    "-f names endpoint, deployment, model and environment YAML.",
                    file=show_path(path),
                    field="-f",
                )
            )
            continue
        failed += read_one(project, path, cache, diags, docs, lookalikes, shaped)
    return failed


def read_one(project, path: Path, cache, diags, docs, lookalikes, shaped) -> int:
    """Read one configuration file into discover's lists (`docs` gets (document, kind) when it is an mlctl
    kind); returns 1 when it could not be read or parsed, else 0."""
    doc, problems = read_document(path, cache, variables=project.overrides.variables)
    diags.extend(problems)
    if doc is None:
        return 1
    kind, why = detect_kind(doc)
    if kind is None:
        if isinstance(doc.data, dict) and _guess(doc.data):
            lookalikes.append(doc.display + _guess(doc.data))
        if why is not None and why.severity == "note" and project.files:
            why = Diagnostic(
                why.summary.replace("skipped ", "", 1),
                "A file named with -f must be an endpoint, deployment, model or environment "
                "YAML: add the Azure '$schema:' URL or 'kind:'.",
                file=doc.display,
            )
        if why is not None:
            diags.append(why)
        return 0
    docs.append((doc, kind))
    if isinstance(doc.data, dict) and "kind" not in doc.data and "$schema" not in doc.data:
        shaped.append(f"{doc.display} as {kind} ({shape_kind(doc.data)[1]})")  # type: ignore[index]
    return 0
