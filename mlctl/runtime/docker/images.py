"""Images of the docker runtime: an environment built to a container image, tagged and labelled by its
content digest (the environment's spec digest and the base image's id), built once per engine and
shared across projects, as virtualenvs are.

How an image is made (no network inside any build): the base is chosen (`base.py`); the environment's
packages plus the scoring server's own (aiohttp; uvloop and orjson where they have wheels) are installed
ON THE HOST with the uv mlctl depends on, `uv pip install --target site --python-version X.Y.Z
--python-platform x86_64-manylinux_2_28`, for the base image's Python; a generated Dockerfile copies
them in (`FROM base; COPY site /opt/mlctl/site`) and the base's Python compiles their bytecode. Every image
holds the server's packages, also the one for a deployment without an environment (`server_image`). The
build log (uv's output, the engine's build output, an `environment.build` context's output) stays at
`build_log(content_digest)`; a failed build is a DriverError quoting its tail.

Contract with the instance half (containers):
- python: `BuiltImage.python` (the base's python3 as `sys.executable` reports it; `/usr/bin/python3` on
  mlctl's own base);
- packages: `/opt/mlctl/site` (`SITE`); the image sets `PYTHONPATH=/opt/mlctl/site`. The instance half
  bind-mounts mlctl's own package read-only and sets `PYTHONPATH=<that mount>:/opt/mlctl/site`;
- which image a deployment runs: `deployment_image(client, data_dir, image_digest, settings, say)`:
  the image the project's image driver recorded for that spec digest (`image_digest` of the
  deployment), or the server-only image when the deployment has no environment;
- labels: `mlctl.managed=1`, `mlctl.kind=image`, `mlctl.content-digest`, `mlctl.spec-digest`,
  `mlctl.base`, `mlctl.base-id`, `mlctl.python`, `mlctl.python-version` (`BuiltImage.from_image` reads them).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mlctl.digests import json_digest
from mlctl.privatefiles import ensure_folder, read_json, read_private, write_atomic
from mlctl.requirements import requirements
from mlctl.runtime.contract import DriverError
from mlctl.runtime.docker import baseimage as bases
from mlctl.runtime.docker import contexts, custom, labels, steps
from mlctl.runtime.docker.sourcebuild import install_from_source
from mlctl.runtime.kit import sourcebuilds
from mlctl.runtime.kit.virtualenvs import FAST_PACKAGES, SERVER_PACKAGES, WHEELS_ONLY, uv_command

SITE = "/opt/mlctl/site"
REPOSITORY = "mlctl/env"
RECIPE_VERSION = 2  # bump when the generated Dockerfile changes (a new content digest)


@dataclass(frozen=True)
class ImageRequest:
    """What an image is built from: an image resource's attributes (`from_attributes`), or nothing but
    the scoring server (`server_only()`)."""

    environment: str | None = None
    spec_digest: str | None = None
    python: str | None = None
    conda_packages: tuple[str, ...] = ()
    pip_packages: tuple[str, ...] = ()
    base_image: str | None = None
    build_context: str | None = None
    dockerfile_path: str | None = None
    custom: bool = False  # a custom container's (inference_config): its image used as it is (custom.py)

    @classmethod
    def from_attributes(cls, a: Mapping[str, Any]) -> ImageRequest:
        """Pure: the request of an image resource's attributes."""
        return cls(
            a.get("environment"),
            a.get("spec_digest"),
            a.get("python"),
            tuple(a.get("conda_packages") or ()),
            tuple(a.get("pip_packages") or ()),
            a.get("base_image"),
            a.get("build_context"),
            a.get("dockerfile_path"),
            bool(a.get("inference_config")),
        )

    @classmethod
    def server_only(cls) -> ImageRequest:
        return cls()


@dataclass(frozen=True)
class BuiltImage:
    """An image in the engine and what it resolved to (recorded in state as the image's observed value)."""

    tag: str
    image_id: str
    content_digest: str
    spec_digest: str | None
    base: str
    base_id: str
    base_reason: str
    python: str
    python_version: str
    site: str = SITE
    frozen: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    built_at: float = 0.0

    def observed(self) -> dict:
        """The image's observed value as JSON (`ImageObserved.from_json` reads it)."""
        return {
            "path": self.tag,
            "tag": self.tag,
            "image_id": self.image_id,
            "content_digest": self.content_digest,
            "base": self.base,
            "base_id": self.base_id,
            "base_reason": self.base_reason,
            "python_executable": self.python,
            "python_version": self.python_version,
            "platform": f"linux {python_platform()}",
            "frozen": self.frozen,
            "built_with": "uv on the host + docker build",
            "notes": self.notes,
            "built_at": self.built_at,
            "site": self.site,
        }

    @classmethod
    def from_image(cls, image) -> BuiltImage | None:
        """The BuiltImage an mlctl image's labels describe (None for an image mlctl did not build)."""
        lab = image.labels or {}
        if (
            not labels.is_managed(lab, "image")
            or image_tag(labels.value(lab, "content-digest") or "") not in image.tags
        ):
            return None  # not one of mlctl's (labels are inherited by images built FROM one; tags are not)
        v = lambda name: labels.value(lab, name)  # noqa: E731
        return cls(
            tag=image_tag(v("content-digest")),
            image_id=image.id,
            content_digest=v("content-digest"),
            spec_digest=v("spec-digest"),
            base=v("base") or "",
            base_id=v("base-id") or "",
            base_reason=v("base-reason") or "",
            python=v("python") or "/usr/bin/python3",
            python_version=v("python-version") or "",
            site=v("site") or SITE,
            frozen=json.loads(v("frozen") or "[]"),
            notes=json.loads(v("notes") or "[]"),
            built_at=float(v("built-at") or 0),
        )


def python_platform() -> str:
    """The uv platform packages are installed for (the engine runs this machine's architecture)."""
    return f"{platform.machine() or 'x86_64'}-manylinux_2_28"


def content_digest(spec_digest: str | None, base_id: str) -> str:
    """Pure: an image's content digest: the environment's spec digest and the base image's id."""
    return json_digest({"spec": spec_digest, "base": base_id, "recipe": RECIPE_VERSION})


def key_of(digest: str) -> str:
    """Pure: 24 hex characters of a digest (tags, logs and locks are named by it)."""
    return digest.split(":", 1)[-1][:24]


def image_tag(digest: str) -> str:
    """Pure: the tag of the image with content digest `digest`."""
    return f"{REPOSITORY}:{key_of(digest)}"


def build_log(digest: str) -> Path:
    """The build log of the image with content digest `digest` (what `logs --container
    storage-initializer` shows)."""
    return steps.log_path(f"image-{key_of(digest)}")


def used_marker(image_id: str) -> Path:
    """The file whose time says when a project last used the image (`mlctl cache prune` reads it)."""
    folder = steps.docker_cache() / "used"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / key_of(image_id)


def mark_used(image_id: str) -> None:
    """Note that a project uses this image now (prune keeps recently used ones)."""
    used_marker(image_id).touch()


def find_built(client, tag: str) -> BuiltImage | None:
    """The mlctl image tagged `tag` in the engine, or None (gone, or not one of mlctl's)."""
    import docker

    try:
        return BuiltImage.from_image(client.images.get(tag))
    except docker.errors.ImageNotFound:
        return None


def ensure_image(client, request: ImageRequest, settings: Mapping[str, Any] | None, say=None) -> BuiltImage:
    """The image of `request` (built when the engine does not have it; a concurrent build of the same
    image is waited for and reused). DriverError for a failed build or a base whose Python does not fit;
    MlctlError for a base that cannot be had (no engine, no debootstrap)."""
    say = say or (lambda m: None)
    if request.custom:
        return custom.custom_image(client, request, settings, say)
    built = None
    if request.build_context:
        network = (settings or {}).get("build_network")
        built = contexts.build(
            client, request.build_context, request.dockerfile_path, request.spec_digest, say, network=network
        )
    base = bases.choose(client, env_image=request.base_image, settings=settings, built=built, say=say)
    problem = bases.python_problem(base, request.python, request.environment)
    if problem:
        raise DriverError(problem, bases.PYTHON_HINT)
    digest = content_digest(request.spec_digest, base.image_id)
    found = find_built(client, image_tag(digest))
    if found:
        return found
    say(base.describe())
    with steps.machine_lock(f"image-{key_of(digest)}", say):
        source_builds = bool((settings or {}).get("source_builds"))
        return find_built(client, image_tag(digest)) or _build(client, request, base, digest, say, source_builds)


def server_image(client, settings: Mapping[str, Any] | None, say=None) -> BuiltImage:
    """The image of a deployment without an environment: the base and the scoring server's packages."""
    return ensure_image(client, ImageRequest.server_only(), settings, say)


def _requirements_text(request: ImageRequest) -> tuple[str, tuple[str, ...]]:
    reqs = requirements(request.conda_packages, request.pip_packages, extra=SERVER_PACKAGES)
    return "".join(f"{line}\n" for line in reqs.lines), reqs.notes


def _frozen(site: Path) -> list[str]:
    return sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions(path=[str(site)]))


def _build(client, request: ImageRequest, base, digest: str, say, source_builds: bool = False) -> BuiltImage:
    uv = uv_command()
    if uv is None:
        raise DriverError(
            "the docker runtime installs packages with uv, which is not installed",
            "Install mlctl with its dependencies (pip install mlctl) or put `uv` on PATH.",
        )
    key = key_of(digest)
    scratch = steps.docker_cache() / "scratch" / f"image-{key}"
    shutil.rmtree(scratch, ignore_errors=True)
    site = scratch / "site"
    site.mkdir(parents=True)
    log_file = build_log(digest)
    text, notes = _requirements_text(request)
    write_atomic(scratch / "requirements.txt", text.encode(), mode=0o600)  # private: it may name indexes
    started = round(time.time(), 3)
    try:
        with open(log_file, "w") as log:
            if request.build_context:
                log.write(steps.tail(contexts.context_log(request.spec_digest), 10_000) + "\n")
            log.write(f"{base.describe()}: Python {base.python_version} at {base.python}\n")
            for note in notes:
                log.write(f"note: {note}\n")
                say(note)
            install = [
                *uv,
                "pip",
                "install",
                "--target",
                str(site),
                "--python-version",
                base.python_version,
                "--python-platform",
                python_platform(),
                *WHEELS_ONLY,
            ]
            env = {"UV_PYTHON_DOWNLOADS": "never"}
            say(f"installing {len(text.splitlines())} package(s) on the host for Python {base.python_version}")
            try:
                if source_builds:
                    install_from_source(client, base, uv, install, scratch, log, say, env)
                else:
                    steps.run([*install, "-r", str(scratch / "requirements.txt")], log, say, "install", env)
            except (subprocess.CalledProcessError, OSError) as e:
                log.flush()
                refused = sourcebuilds.no_wheel(steps.tail(log_file, 200))
                if refused is not None and not source_builds:
                    raise _failed(sourcebuilds.refusal(refused, "docker"), log_file) from None
                raise _failed(f"installing the packages failed ({e})", log_file) from None
            try:
                steps.run([*install, *FAST_PACKAGES], log, None, "", env)
            except (subprocess.CalledProcessError, OSError):
                log.write("note: uvloop/orjson unavailable for this platform; the scoring server runs without them\n")
            frozen = _frozen(site)
            facts = {
                "content_digest": digest,
                "spec_digest": request.spec_digest,
                "base": base.name,
                "base_id": base.image_id,
                "base_reason": base.reason,
                "python": base.python,
                "python_version": base.python_version,
                "site": SITE,
                "frozen": json.dumps(frozen),
                "notes": json.dumps(list(notes)),
                "built_at": str(started),
            }
            (scratch / "Dockerfile").write_text(dockerfile(base.ref, base.python, labels.managed("image", **facts)))
            say(f"building image {image_tag(digest)}")
            try:
                image_id = steps.engine_build(
                    client, log, say, path=str(scratch), tag=image_tag(digest), network_mode="none"
                )
            except steps.EngineBuildFailed as e:
                raise _failed(f"building the image failed: {e}", log_file) from None
            log.write(f"built {image_tag(digest)} ({image_id}) in {time.time() - started:.1f}s\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return BuiltImage(
        image_tag(digest),
        image_id,
        digest,
        request.spec_digest,
        base.name,
        base.image_id,
        base.reason,
        base.python,
        base.python_version,
        SITE,
        frozen,
        list(notes),
        started,
    )


# compiles the packages' bytecode with the image's own Python, once, so that no container start pays for
# it (importing scikit-learn uncompiled takes seconds); files that do not compile are left as they are
COMPILE = (
    "import compileall, py_compile; compileall.compile_dir({site!r}, quiet=2, workers=0, "
    "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
)


def dockerfile(base_ref: str, python: str, image_labels: Mapping[str, str]) -> str:
    """Pure: the generated Dockerfile: the base, the packages installed on the host, their bytecode
    compiled by the base's `python` (no network), the labels (one instruction: each is a build step)."""
    label_args = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(image_labels.items()))
    compile_step = json.dumps([python, "-c", COMPILE.format(site=SITE)])
    return f"FROM {base_ref}\nCOPY site {SITE}\nRUN {compile_step}\nENV PYTHONPATH={SITE}\nLABEL {label_args}\n"


def _failed(summary: str, log_file: Path) -> DriverError:
    return DriverError(summary, f"The build log is {log_file}.", steps.tail(log_file))


# ---- which image a project's deployments run -----------------------------------------------------


def _index(data_dir) -> Path:
    return Path(data_dir) / "docker" / "images.json"


def _recorded_all(data_dir) -> dict:
    try:
        return read_json(read_private(_index(data_dir), what="image index"))
    except (OSError, ValueError):
        return {}


def record(data_dir, spec_digest: str, built: BuiltImage) -> None:
    """Note in the project's data folder that its environment `spec_digest` runs as `built` (the image
    driver calls it; `deployment_image` reads it). Never through a symbolic link (privatefiles)."""
    known = _recorded_all(data_dir)
    if known.get(spec_digest) != asdict(built):
        ensure_folder(_index(data_dir).parent, base=data_dir)
        known[spec_digest] = asdict(built)
        write_atomic(
            _index(data_dir), json.dumps(known, indent=1, sort_keys=True).encode(), mode=0o644, what="image index"
        )


def recorded(data_dir, spec_digest: str) -> BuiltImage | None:
    """The image the project's image driver last built or read for `spec_digest`, or None."""
    try:
        return BuiltImage(**_recorded_all(data_dir)[spec_digest])
    except (KeyError, TypeError):
        return None


def deployment_image(
    client, data_dir, image_digest: str | None, settings: Mapping[str, Any] | None, say=None
) -> BuiltImage:
    """The image a deployment's containers run: its environment's (`image_digest`, as recorded by
    the image driver; DriverError when it is not in the engine), else the server-only image."""
    if not image_digest:
        built = server_image(client, settings, say)
    else:
        built = recorded(data_dir, image_digest)
    if built is not None and built.python == custom.PYTHON:
        present = custom.find_custom(client, built.tag, built.spec_digest)
    else:
        present = find_built(client, built.tag) if built is not None else None
    if built is None or present is None:
        raise DriverError(
            f"the image of environment {image_digest[:19]}… is not in the Docker engine",
            "Run `mlctl apply` again: the plan rebuilds the image first.",
        )
    mark_used(built.image_id)
    return built
