"""The base image an environment's image starts from, chosen in this order:

1. the image the environment's own `build:` context made (`contexts.py`), when it has one;
2. the environment's `image`, when the engine has it or can pull it;
3. the project file's `docker: base_image:`, when the engine has it or can pull it;
4. a base mlctl builds itself from Debian's packages: `debootstrap --variant=minbase
   --include=python3 bookworm`, imported into the engine, tagged and labelled by the digest of that
   recipe, built once per machine (under a machine-wide lock: a second apply waits and reuses it).

`choose()` returns a `Base` whose `reason` says which one and why (plan and apply show it). The base's
Python (version and executable) is read by running it in a throwaway container, cached by image id in
`$MLCTL_CACHE/docker/pythons.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mlctl.digests import json_digest
from mlctl.errors import Diagnostic, MlctlError
from mlctl.privatefiles import write_atomic
from mlctl.runtime.docker import labels, steps
from mlctl.runtime.kit.pythons import satisfies

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# the recipe of mlctl's own base; its digest names and labels the image (change it: a new base)
RECIPE = {
    "tool": "debootstrap",
    "variant": "minbase",
    "include": ["python3"],
    "suite": SUITE,
    "python": "3.11",
    "version": 1,
}
BASE_REPOSITORY = "mlctl/base"
PROBE = "import platform, sys; print(platform.python_version()); print(sys.executable)"

_pulls: dict[str, str] = {}  # image name -> why it is not available (one pull attempt per process)


@dataclass(frozen=True)
class Base:
    """The base chosen for an image. `ref` is what a Dockerfile's FROM names (the image id once the
    image exists); `python`: the interpreter's path inside; `source`: build | environment | project | mlctl."""

    name: str
    image_id: str | None
    source: str
    reason: str
    python_version: str | None
    python: str | None

    @property
    def ref(self) -> str:
        return self.image_id or self.name

    def describe(self) -> str:
        """Pure: one line for plan and apply: which base and why."""
        return f"base image {self.name} ({self.reason})"


def recipe_digest() -> str:
    """Pure: the digest of mlctl's own base recipe."""
    return json_digest(RECIPE)


def base_tag(recipe: str | None = None) -> str:
    """Pure: the tag of mlctl's own base image (of the recipe with digest `recipe`; default: this one)."""
    return f"{BASE_REPOSITORY}:{SUITE}-{(recipe or recipe_digest()).split(':', 1)[1][:12]}"


SERVER_PYTHON = ">=3.9"  # what mlctl's scoring server runs on


def python_problem(base: Base, request: str | None, environment: str | None) -> str | None:
    """Pure: why `base` cannot serve an environment asking for python `request`, or mlctl's scoring
    server (which needs SERVER_PYTHON); None when it can."""
    if not base.python_version:
        return None
    version = tuple(int(x) for x in base.python_version.split(".")[:3] if x.isdigit())
    whose = f"environment '{environment}'" if environment else "the environment"
    for want, who in ((request, f"{whose} asks for"), (SERVER_PYTHON, "mlctl's scoring server needs")):
        if want and not satisfies(version, want):
            return f"base image {base.name} has Python {base.python_version}, but {who} python {want}"
    return None


PYTHON_HINT = (
    "Use a base image whose Python fits (the environment's `image:` or `docker: base_image:` in "
    "mlctl.yaml), or change the python version in the conda file."
)


def _python_cache() -> dict:
    try:
        return json.loads((steps.docker_cache() / "pythons.json").read_text())
    except (OSError, ValueError):
        return {}


def python_of(client, image_id: str, name: str) -> tuple[str, str]:
    """(version, executable) of `python3` in the image (run once in a throwaway container, cached by
    image id). MlctlError when the image has no working python3."""
    known = _python_cache()
    if image_id in known:
        return tuple(known[image_id])
    import docker

    try:
        out = client.containers.run(
            image_id,
            ["-c", PROBE],
            entrypoint=["python3"],
            remove=True,
            network_disabled=True,
            labels=labels.managed("probe"),
            stderr=True,
        )
    except (docker.errors.ContainerError, docker.errors.APIError) as e:
        raise MlctlError(
            Diagnostic(
                f"base image {name} has no working python3: {getattr(e, 'explanation', None) or e}",
                "mlctl installs packages for the base image's python3 and runs the scoring "
                "server with it: " + PYTHON_HINT,
            )
        ) from None
    version, executable = out.decode(errors="replace").split()[:2]
    known = {**_python_cache(), image_id: [version, executable]}
    write_atomic(steps.docker_cache() / "pythons.json", json.dumps(known, indent=1).encode(), mode=0o644)
    return version, executable


PULLABLE = "pullable"  # what available(pull=False) returns for an image the registry has


def available(client, name: str, say=None, pull: bool = True, ask_registry: bool = False) -> tuple[Any | None, str]:
    """(the image, '') when the engine has `name` or can pull it (pulled now), else (None, why not).
    With `pull=False` nothing is pulled and, unless `ask_registry`, no registry is asked (no network
    request): (PULLABLE, '') for an image the engine lacks (when asked: only when the registry has it)."""
    import docker

    try:
        return client.images.get(name), ""
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as e:
        return None, f"the engine cannot read it: {e.explanation or e}"
    if name in _pulls:
        return None, _pulls[name]
    if not pull and not ask_registry:
        return PULLABLE, ""
    if say and pull:
        say(f"pulling {name}")
    try:
        return (client.images.pull(name) if pull else client.images.get_registry_data(name) and PULLABLE), ""
    except docker.errors.DockerException as e:
        why = f"the engine does not have it and cannot pull it: {getattr(e, 'explanation', None) or e}"
        _pulls[name] = why
        return None, why


def _with_python(client, base: Base) -> Base:
    if base.image_id is None:
        return base
    version, executable = python_of(client, base.image_id, base.name)
    return replace(base, python_version=version, python=executable)


def choose(
    client, *, env_image: str | None, settings: Mapping[str, Any] | None, built=None, say=None, build: bool = True
) -> Base:
    """The base for an environment (see the module's order). `built`: the image its `build:` context
    made. With `build=False` nothing is pulled or built (mlctl's own base, when missing, has the
    recipe's Python; an image still to be pulled has none known yet): what plan checks and shows."""
    settings = settings or {}
    if built is not None:
        name = (built.tags or [built.id])[0]
        return _with_python(
            client, Base(name, built.id, "build", "built from the environment's build context", None, None)
        )
    passed_over = []
    for source, name, what in (
        ("environment", env_image, "the environment's image"),
        ("project", settings.get("base_image"), "docker: base_image in mlctl.yaml"),
    ):
        if not name:
            continue
        image, why = available(client, name, say, pull=build, ask_registry=bool(settings.get("plan_asks_registry")))
        if image is PULLABLE:
            return Base(name, None, source, what + " (not in the engine: pulled at apply)", None, None)
        if image is not None:
            return _with_python(client, Base(name, image.id, source, what, None, None))
        passed_over.append(f"{what} {name}: {why}")
    reason = "mlctl's own Debian base" + (
        f"; passed over {'; '.join(passed_over)}"
        if passed_over
        else "; neither the environment nor mlctl.yaml names a base image"
    )
    return mlctl_base(client, reason, say=say, build=build)


def _own_base(client):
    """mlctl's own base in the engine, or None: found by its tag (an image built FROM it inherits its
    labels, not its tag) and checked by its recipe label."""
    import docker

    try:
        image = client.images.get(base_tag())
    except docker.errors.ImageNotFound:
        return None
    return (
        image
        if labels.is_managed(image.labels, "base") and labels.value(image.labels, "recipe") == recipe_digest()
        else None
    )


def mlctl_base(client, reason: str, say=None, build: bool = True) -> Base:
    """mlctl's own base (built once per machine when missing and `build`)."""
    found = _own_base(client)
    if found is None and build:
        with steps.machine_lock(f"base-{recipe_digest().split(':', 1)[1][:24]}", say):
            found = _own_base(client)
            if found is None:
                found = _build_base(client, say)
                reason += " (built now, once per machine)"
    if found is None:
        return Base(base_tag(), None, "mlctl", reason + " (to be built)", RECIPE["python"], "/usr/bin/python3")
    return _with_python(client, Base(base_tag(), found.id, "mlctl", reason, None, None))


def base_log():
    """The build log of mlctl's own base."""
    return steps.log_path(f"base-{recipe_digest().split(':', 1)[1][:24]}")


OTHER_BASE = "name a base image with python3 in mlctl.yaml (`docker: base_image: ...`) or in the environment (`image:`)"


def build_problem() -> Diagnostic | None:
    """Why mlctl's own base cannot be built on this machine (a tool missing, not root), or None. The
    preflight asks before anything is created when an image will need that base."""
    for tool in ("debootstrap", "tar"):
        if shutil.which(tool) is None:
            return Diagnostic(
                f"building mlctl's base image needs `{tool}`, which is not installed",
                f"Install it (`apt-get install {tool}`), or {OTHER_BASE}. Nothing was changed.",
            )
    if os.geteuid() != 0:
        return Diagnostic(
            "building mlctl's base image runs debootstrap, which needs root",
            f"Run this apply once as root (the base is built once per machine), or {OTHER_BASE}. Nothing was changed.",
        )
    return None


def _build_base(client, say):
    """debootstrap the recipe into a scratch folder and import it into the engine; the image."""
    import docker

    problem = build_problem()
    if problem:
        raise MlctlError(problem)
    scratch = steps.docker_cache() / "scratch" / f"base-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    root = scratch / "rootfs"
    log_file = base_log()
    if say:  # one line: debootstrap's own lines (hundreds) go to the log; progress says "still ..." meanwhile
        say(f"building mlctl's base image with debootstrap (once per machine, a few minutes; log: {log_file})")
    try:
        with open(log_file, "w") as log:
            try:
                steps.run(
                    [
                        "debootstrap",
                        f"--variant={RECIPE['variant']}",
                        f"--include={','.join(RECIPE['include'])}",
                        SUITE,
                        str(root),
                        os.environ.get("MLCTL_DEBIAN_MIRROR", MIRROR),
                    ],
                    log,
                )
            except (subprocess.CalledProcessError, OSError) as e:
                raise MlctlError(
                    Diagnostic(
                        f"building mlctl's base image failed: debootstrap: {e}",
                        f"See {log_file}; its end:\n{steps.tail(log_file, 15)}",
                    )
                ) from None
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for p in (root / junk).glob("*"):
                    if p.is_file():
                        p.unlink()
            if say:
                say("importing the base image into the engine")
            changes = [
                "LABEL "
                + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.managed("base", recipe=recipe_digest()).items()),
                "ENV LANG=C.UTF-8",
                'CMD ["python3"]',
            ]
            tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            repository, tag = base_tag().split(":")
            try:
                client.api.import_image_from_stream(tar.stdout, repository=repository, tag=tag, changes=changes)
            except docker.errors.APIError as e:
                raise MlctlError(
                    Diagnostic(
                        f"importing mlctl's base image into the engine failed: {e.explanation or e}", f"See {log_file}."
                    )
                ) from None
            finally:
                tar.stdout.close()
                tar.wait()
            log.write(f"imported as {base_tag()}\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return client.images.get(base_tag())
