"""Images as virtualenvs on this machine (the local and ray runtimes): the image driver, the serving spec of an
instance on a virtualenv's interpreter, and `VirtualenvRuntime`, the operations of a runtime whose images
these are (its preflight finds an interpreter for every Python asked for; build logs; the shared cache).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from mlctl.errors import Diagnostic, MlctlError
from mlctl.requirements import requirements
from mlctl.resources import Address, Kind
from mlctl.runtime.contract import DriverError, Unscalable
from mlctl.runtime.kit import cache, snapshot, store, virtualenvs
from mlctl.runtime.kit.operations import HostedRuntime
from mlctl.runtime.kit.confinement import OPT_OUT
from mlctl.runtime.kit.servingspec import serving_spec
from mlctl.observed import ImageObserved


class ImageDriver(Unscalable):
    """Builds the environment's virtualenv (cached by spec digest, shared across projects)."""

    def create(self, resource, prior, ctx):
        a = dict(resource.attributes)
        reqs = requirements(a.get("conda_packages") or (), a.get("pip_packages") or ())
        address = str(resource.address)
        try:
            built = virtualenvs.build_env(
                a["spec_digest"],
                a.get("python"),
                reqs,
                progress=lambda m: ctx.progress(address, m),
                source_builds=bool((ctx.settings or {}).get("source_builds")),
            )
        except virtualenvs.EnvBuildError as e:
            raise DriverError(
                f"building the virtualenv of {address} failed: {e.summary}",
                f"The build log is {e.log_path}.",
                e.log_tail,
            ) from None
        virtualenvs.mark_used(a["spec_digest"])
        return ImageObserved.from_json(built.observed())

    def update(self, resource, prior, ctx):
        return self.create(resource, prior, ctx)

    roll = recreate = update

    def delete(self, address, prior, ctx, keep_identity=False):
        """Virtualenvs stay in the shared cache (another project may use them): `mlctl cache prune`."""

    def read(self, address, prior, ctx):
        built = virtualenvs.read_built(prior.attributes["spec_digest"])
        if built is None:
            return None
        virtualenvs.mark_used(prior.attributes["spec_digest"])
        return ImageObserved.from_json(built.observed())


def deployment_python(a: dict, without_environment: str = sys.executable) -> str:
    """The interpreter of a deployment: its image's virtualenv, or `without_environment` (mlctl's own)."""
    if not a.get("environment"):
        return without_environment
    built = virtualenvs.read_built(a["image_digest"]) if a.get("image_digest") else None
    if built is None:
        raise DriverError(
            f"the virtualenv of environment {a['environment']!r} is not built",
            "Run `mlctl apply` again: the plan rebuilds the image first.",
        )
    return built.python_executable


def virtualenv_spec(ctx, a: dict, launcher: str, without_environment: str = sys.executable) -> dict:
    """The endpoint host's serving spec for deployment attributes `a`: instances run by `launcher` on the
    deployment's virtualenv interpreter (`without_environment` when it has none), sized by its `resources`
    (requests and limits, read by the launcher) and run as the project's `local.instance_user` and
    `local.fork_server` say; snapshots the code."""
    launch = {"resources": a["resources"]} if a.get("resources") else {}  # the instances' cgroup sizing
    if (ctx.settings or {}).get("instance_user") == OPT_OUT:  # local: run as mlctl's user, unconfined
        launch["instance_user"] = OPT_OUT
    if (ctx.settings or {}).get("fork_server") is False:  # local: every instance a fresh interpreter
        launch["fork_server"] = False
    return serving_spec(ctx, a, deployment_python(a, without_environment), launcher, launch)


def python_problems(resources: Iterable) -> list[Diagnostic]:
    """Every image not built yet whose Python version no interpreter here satisfies (file and line)."""
    from mlctl.runtime.kit.pythons import find_python

    problems = []
    resources = list(resources)
    conda_files = {
        r.attributes.get("name"): r.attributes.get("conda_file") for r in resources if r.kind is Kind.ENVIRONMENT
    }
    for r in resources:
        if r.kind is not Kind.IMAGE:
            continue
        a = r.attributes
        if virtualenvs.read_built(a.get("spec_digest", "")) is not None:
            continue  # already built: its interpreter exists
        try:
            find_python(a.get("python"))
        except MlctlError as e:
            d = e.diagnostics[0]
            conda = conda_files.get(a.get("environment"))
            detail = d.detail.replace("in the conda file", f"in the conda file {conda}") if conda else d.detail
            problems.append(
                Diagnostic(
                    d.summary,
                    detail,
                    file=r.source.file if r.source else None,
                    line=r.source.line if r.source else None,
                    address=str(r.address),
                )
            )
    return problems


class VirtualenvRuntime(HostedRuntime):
    """The operations of a hosted runtime whose images are virtualenvs built on this machine."""

    def preflight(self, resources: Iterable) -> None:
        """MlctlError listing every image whose Python version no interpreter here satisfies."""
        problems = python_problems(resources)
        if problems:
            raise MlctlError(*problems)

    def build_logs(self, project, state, endpoint, deployment, lines):
        rs = state.resources.get(Address(Kind.DEPLOYMENT, f"{endpoint}.{deployment}"))
        if rs is None:
            raise MlctlError(f"endpoint {endpoint!r} has no applied deployment {deployment!r}")
        a = rs.attributes
        name, version = a.get("model"), a.get("model_version")
        where = store.model_dir(project.data_dir, name, version)
        digest = store.registered_digest(project.data_dir, name, version)
        out = [f"model {name}:{version} registered at {where} (digest {digest})"]
        if a.get("code_digest"):
            out.append(
                f"code snapshot {snapshot.snapshot_path(project.data_dir, a['code_digest'])} "
                f"(digest {a['code_digest']})"
            )
        if not a.get("environment"):
            out.append("no environment: instances run on mlctl's own interpreter")
        elif a.get("image_digest"):
            log = virtualenvs.build_log(a["image_digest"])
            if log.exists():
                out.append(f"image build log {log}:")
                out += log.read_text(errors="replace").splitlines()[-lines:]
            else:
                out.append(f"no build log for environment {a['environment']!r} (built elsewhere or pruned)")
        return out

    def cache_location(self) -> str:
        return str(virtualenvs.cache_dir())

    def cache_entries(self, project, state):
        return cache.entries(project.data_dir, state)

    def prune(self, entries, older_than_s, now):
        return cache.prunable(entries, older_than_s, now)

    def remove(self, entry) -> bool:
        return cache.remove(entry)
