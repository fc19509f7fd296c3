"""The local runtime: instances are scoring-server processes on this machine, images are virtualenvs.

Its drivers are in `drivers.py`; what only it knows at run time (an interpreter for each Python
version asked for, the build logs, the shared virtualenv cache and the model store) is here.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlctl.errors import Diagnostic, MlctlError
from mlctl.resources import Address, Kind
from mlctl.runtime.hosted import HostedRuntime
from mlctl.runtime.local import cache, envs, snapshot, store
from mlctl.runtime.local.drivers import local_drivers


class LocalRuntime(HostedRuntime):
    name = "local"

    def __init__(self, settings=None):
        super().__init__(settings)
        self.drivers = local_drivers()

    def preflight(self, resources: Iterable) -> None:
        """MlctlError listing every image whose Python version no interpreter here satisfies."""
        from mlctl.runtime.local.pythons import find_python

        problems = []
        resources = list(resources)
        conda_files = {
            r.attributes.get("name"): r.attributes.get("conda_file") for r in resources if r.kind is Kind.ENVIRONMENT
        }
        for r in resources:
            if r.kind is not Kind.IMAGE:
                continue
            a = r.attributes
            if envs.read_built(a.get("spec_digest", "")) is not None:
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
            log = envs.build_log(a["image_digest"])
            if log.exists():
                out.append(f"image build log {log}:")
                out += log.read_text(errors="replace").splitlines()[-lines:]
            else:
                out.append(f"no build log for environment {a['environment']!r} (built elsewhere or pruned)")
        return out

    def cache_location(self) -> str:
        return str(envs.cache_dir())

    def cache_entries(self, project, state):
        return cache.entries(project.data_dir, state)

    def prune(self, entries, older_than_s, now):
        return cache.prunable(entries, older_than_s, now)

    def remove(self, entry) -> bool:
        return cache.remove(entry)


def runtime(settings) -> LocalRuntime:
    return LocalRuntime(settings)
