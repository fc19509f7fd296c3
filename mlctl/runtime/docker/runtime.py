"""The docker runtime: every deployment instance a container on a Docker engine, behind the same endpoint
host as the local runtime; images built from environments (the image half: `images.py`, `base.py`).

Its drivers are in `drivers.py`, its instances' launcher in `launcher.py`. What only it knows at run
time is here: the engine check before planning and applying, build logs, and the containers a killed
endpoint host left behind (for `destroy`).
"""

from __future__ import annotations

from collections.abc import Iterable

from mlctl import runtimerecords
from mlctl.errors import MlctlError
from mlctl.resources import Address, Kind
from mlctl.runtime.docker import containers, engine, imagecache, imagechecks, labels
from mlctl.runtime.docker.drivers import docker_drivers
from mlctl.runtime.docker.runcontext import DockerContext
from mlctl.runtime.host.client import find_host
from mlctl.runtime.kit import cache, capacity
from mlctl.runtime.kit.operations import HostedRuntime

PROJECT_KINDS = ("model", "code")  # what the project keeps itself (virtualenvs are the local runtime's)


class DockerRuntime(HostedRuntime):
    name = "docker"
    without_environment = "the scoring server's image"

    def __init__(self, settings=None):
        super().__init__(settings)
        self.drivers = docker_drivers(self.name, runtimerecords.launcher_of(self.name))

    def context(self, project, **kwargs) -> DockerContext:
        return DockerContext(project, settings=self.settings, **kwargs)

    def preflight(self, resources: Iterable) -> None:
        """MlctlError naming the engine address tried when no Docker engine answers, or listing every
        image whose base's Python does not satisfy its environment and every deployment whose resources exceed
        the engine's machine (containers get no GPUs from mlctl) (file and line); nothing changed."""
        client, resources = engine.connect(self.settings), list(resources)
        problems = imagechecks.python_problems(client, resources, self.settings)
        if any(r.kind is Kind.DEPLOYMENT and r.attributes.get("resources") for r in resources):
            info = client.info()
            machine = capacity.Machine(
                int(info.get("NCPU") or 0), int(info.get("MemTotal") or 0), 0, "the Docker engine's machine"
            )
            problems += capacity.sizing_problems(resources, machine, "docker")
        if problems:
            raise MlctlError(*problems)

    def plan_notes(self, resources: Iterable) -> list:
        """Which base each image starts from and why (and its tag when already known; none without an engine),
        and the capacity warning of every hosted runtime."""
        resources = list(resources)
        try:
            notes = imagechecks.base_notes(engine.connect(self.settings), resources, self.settings)
        except Exception:  # notes are best effort: plan says nothing rather than fail
            notes = []
        return notes + super().plan_notes(resources)

    def build_logs(self, project, state, endpoint, deployment, lines):
        from mlctl.runtime.docker import images

        rs = state.resources.get(Address(Kind.DEPLOYMENT, f"{endpoint}.{deployment}"))
        if rs is None:
            raise MlctlError(f"endpoint {endpoint!r} has no applied deployment {deployment!r}")
        a = rs.attributes
        built = images.recorded(project.data_dir, a["image_digest"]) if a.get("image_digest") else None
        if built is None:
            return [
                f"no image build recorded for deployment {deployment!r} "
                f"({'it runs the scoring server image' if not a.get('image_digest') else 'built elsewhere or pruned'})"
            ]
        out = [f"image {built.tag} ({built.base_reason or built.base})"]
        log = images.build_log(built.content_digest)
        if log.exists():
            out.append(f"image build log {log}:")
            out += log.read_text(errors="replace").splitlines()[-lines:]
        return out

    def cache_location(self) -> str:
        return f"images in the Docker engine at {engine.address()}; models and code snapshots in each project"

    def cache_entries(self, project, state):
        """mlctl's images in the engine, and this project's registered models and code snapshots."""
        return [e for e in cache.entries(project.data_dir, state) if e.kind in PROJECT_KINDS] + imagecache.entries(
            engine.connect(self.settings), state
        )

    def prune(self, entries, older_than_s, now):
        return [e for e in cache.prunable(entries, older_than_s, now) if e.kind in PROJECT_KINDS] + imagecache.prunable(
            entries, older_than_s, now
        )

    def remove(self, entry) -> bool:
        if entry.kind in imagecache.KINDS:
            return imagecache.remove(engine.connect(self.settings), entry)
        return cache.remove(entry)

    def leftovers(self, project, recorded):
        """The endpoint hosts the state lost (as every hosted runtime), and the containers of this
        project whose endpoint host is gone (a killed host leaves its containers running)."""
        found = super().leftovers(project, recorded)
        try:
            running = containers.project_containers(project.data_dir)
        except engine.engine_errors():  # no engine: nothing of it can be running either
            return found
        for c in running:
            endpoint = labels.value(c["Labels"], "endpoint") or ""
            if find_host(project.data_dir, endpoint) is None:
                name = c["Names"][0].lstrip("/") if c.get("Names") else c["Id"][:12]
                found.append(
                    (f"container {name} (its endpoint host is gone)", lambda cid=c["Id"]: containers.remove(cid))
                )
        return found


def runtime(settings) -> DockerRuntime:
    return DockerRuntime(settings)
