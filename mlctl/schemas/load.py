"""Loading: a project's YAML files -> the desired Resources (Config), with every problem as a diagnostic."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Mapping

from mlctl.errors import Diagnostic, MlctlError
from mlctl.projectpaths import Project
from mlctl.projectfile import ProjectSettings, read_project_settings
from mlctl.resources import Resource
from mlctl.schemas.documents import DISPLAY_ROOT
from mlctl.schemas.validate import honoured_fields
from mlctl.schemas.build import PATH_ATTRIBUTES, Builder, resource_digest  # noqa: F401  (re-exported)

__all__ = ["Config", "load_config", "PATH_ATTRIBUTES", "resource_digest"]

# Set to a dict, a load puts its specs, the builder's assets and folder digests and the cross-file checks' problems
# in it (for mlctl.reconciler.planbase).
BUILT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("BUILT", default=None)


@dataclass(frozen=True)
class Config:
    """The desired configuration.

    resources:   sorted by address; includes image.* and traffic.*. Empty when there are errors.
    diagnostics: errors, warnings and notes ("skipped conda.yml: ..."), in file order.
    inputs:      {absolute path: "sha256:<hex>"} of every config file and every file it references
                 (conda files, code files, model files): a saved plan binds to these.
    ignored:     {address: (format_field cloud-only fields accepted but not honoured)}.
    project_settings: the runtime and its settings (mlctl.yaml and the overrides); None when there are errors.
    """

    resources: tuple[Resource, ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    inputs: Mapping[str, str] = field(default_factory=dict)
    ignored: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    project_settings: ProjectSettings | None = None

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    def has_errors(self) -> bool:
        return bool(self.errors)

    def raise_for_errors(self) -> None:
        """Raise MlctlError carrying every diagnostic (errors, warnings, notes) when there is an error."""
        if self.has_errors():
            raise MlctlError(*self.errors)

    def resource(self, address: str) -> Resource | None:
        return next((r for r in self.resources if str(r.address) == address), None)


def ignored_of(resources, runtime: str | None) -> dict[str, tuple[str, ...]]:
    """Pure: {address: the cloud-only fields a resource sets that the runtime does not honour}, in resource order."""
    return {
        str(r.address): kept
        for r in resources
        if (kept := tuple(f for f in r.ignored if f not in honoured_fields(r.kind.value, runtime)))
    }


def load_config(project: Project, *, cache=None) -> Config:
    """Read, validate and normalize the project's configuration. Never raises for bad input.

    Reads the config files and hashes every referenced file (file hashes cached in
    `<data_dir>/hashcache.json`, which it writes). `cache`: a HashCache to use instead of
    loading that file (its counters tell which files were read).
    """
    token = DISPLAY_ROOT.set(str(project.root))
    try:
        return _load(project, cache)
    finally:
        DISPLAY_ROOT.reset(token)


def _load(project: Project, cache) -> Config:
    from mlctl.boundary import project_boundary
    from mlctl.digests import CACHE_FILE, HashCache
    from mlctl.schemas.checks import check_specs
    from mlctl.schemas.discovery import discover
    from mlctl.schemas.normalize import add_document
    from mlctl.schemas.specs import Specs

    from mlctl.schemas.doccache import DocumentCache

    documents = DocumentCache.open(project.data_dir)
    docs, diags, unparsed = discover(project, documents)
    inputs = {str(doc.path): "sha256:" + doc.digest for doc, _ in docs}
    settings, problems = read_project_settings(project)
    diags.extend(problems)
    if settings is not None and settings.file:  # a saved plan goes stale when the runtime or its settings change
        inputs[settings.file] = settings.digest
    if settings is not None:
        from mlctl.computes import endpoint_computes, unmapped_note

        if (note := unmapped_note(settings.computes, endpoint_computes(docs), settings.runtime)) is not None:
            diags.append(note)
    specs = Specs(incomplete=unparsed > 0, explicit=bool(project.files))
    for doc, kind in docs:
        add_document(doc, kind, specs, diags)
    checks = check_specs(specs)
    diags.extend(checks)
    if cache is None:
        cache = HashCache.load(project.data_dir / CACHE_FILE)
    builder = Builder(
        specs,
        cache,
        diags,
        runtime=settings.runtime if settings is not None else None,
        boundary=str(project.boundary) if project.boundary else project_boundary(project.root),
        **({"listen": settings.listen} if settings is not None else {}),
    )
    resources = builder.build()
    if (kept := BUILT.get()) is not None:  # the plan base (mlctl.reconciler.planbase) keeps what remakes a file
        kept.update(
            specs=specs, assets=builder.assets, trees=builder.trees, checks=checks, builder_inputs=builder.inputs
        )
    inputs.update(builder.inputs)
    inputs.update(project.overrides.inputs())  # a saved plan binds to the --set and --var it was made with
    if (cache.computed or documents.fresh) and project.data_dir.parent.is_dir():
        try:
            project.ensure_data_dir()
            cache.save()
            documents.save()
        except OSError:
            pass  # a read-only checkout: the caches are only a speed-up
    diags = list(dict.fromkeys(diags))  # the same problem met twice (a conda file in the project folder)
    errors = any(d.severity == "error" for d in diags)
    runtime = settings.runtime if settings is not None else None
    ignored = ignored_of(resources, runtime)
    diags.sort(key=lambda d: (d.file or "", d.line or 0, {"error": 0, "warning": 1, "note": 2}[d.severity]))
    return Config(
        () if errors else tuple(resources),
        tuple(diags),
        dict(sorted(inputs.items())),
        {} if errors else ignored,
        None if errors else settings,
    )
