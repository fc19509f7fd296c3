"""Images the corpus builds itself, because the engine reaches no registry: a base whose `python3` is this
machine's Python X.Y (its installation copied in, FROM mlctl's own Debian base), and stand-ins for the
registry images Azure's custom-container examples start FROM (`tests/corpus/images/NAME/`), so that an
example's own Dockerfile builds unmodified, with no network.

A stand-in folder holds `image.yml` (the tag it stands in for, the Python, the packages of its environment
and why) and `Dockerfile` (`{base}` is the Python base). Its environment is a virtualenv built here by uv
(`--relocatable`, from uv's cache) and copied in, at the path the real image keeps its environment.
Each image is tagged and labelled with the digest of what went in, and built once per engine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import yaml
from corpus_support import find_interpreter

HERE = Path(__file__).resolve().parent / "images"
LABEL = "mlctl-test.recipe"  # the digest of what went into an image the corpus built
SKIPPED = ("test", "idlelib", "tkinter", "site-packages", "__pycache__", "ensurepip")  # of a copied Python


def _tar(dockerfile: str, folders: dict[str, Path], skipped: tuple[str, ...] = ()) -> io.BytesIO:
    """A build context: the Dockerfile and each folder at its name, without the files and folders named in
    `skipped`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name, folder in folders.items():
            tar.add(folder, name, filter=lambda t: None if Path(t.name).name in skipped else t)
    buffer.seek(0)
    return buffer


def _existing(client, tag: str, recipe: str) -> bool:
    """Whether the engine has `tag` built from `recipe`. One built from another recipe (the corpus built it:
    it carries the label) is removed, so that replacing it leaves no untagged image behind."""
    import docker

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    if image.labels.get(LABEL) == recipe:
        return True
    if LABEL in image.labels:
        try:
            client.images.remove(image.id)
        except docker.errors.APIError:  # still used by a container (another test's): it stays, untagged later
            pass
    return False


def python_base(client, version: str) -> str:
    """The tag of a base image whose `python3` is this machine's Python `version` at /opt/python`version`
    (FROM mlctl's own base; built once per engine, tagged by what went in)."""
    from mlctl.runtime.docker import baseimage

    mlctl_base = baseimage.choose(client, env_image=None, settings={})
    prefix = Path(find_interpreter(version)).resolve().parents[1]
    recipe = hashlib.sha256(f"{prefix}:{mlctl_base.image_id}".encode()).hexdigest()[:12]
    tag = f"mlctl-test/python{version.replace('.', '')}:{recipe}"
    if _existing(client, tag, recipe):
        return tag
    dockerfile = (
        f"FROM {mlctl_base.image_id}\nCOPY python /opt/python{version}\nENV LD_LIBRARY_PATH=/opt/python{version}/lib\n"
        f'RUN ["ln", "-sf", "/opt/python{version}/bin/python{version}", "/usr/local/bin/python3"]\n'
        f'LABEL {LABEL}="{recipe}"\n'
    )
    context = _tar(dockerfile, {"python": prefix}, SKIPPED)
    client.images.build(fileobj=context, custom_context=True, tag=tag, network_mode="none", rm=True, forcerm=True)
    return tag


def stand_in(client, name: str) -> str:
    """Build the stand-in `tests/corpus/images/NAME` unless the engine has it with the same recipe; returns
    the tag it stands in for (an example's Dockerfile names it in FROM)."""
    spec = yaml.safe_load((HERE / name / "image.yml").read_text())
    version = spec["python"]
    base = python_base(client, version)
    dockerfile = (HERE / name / "Dockerfile").read_text().format(base=base, python=version)
    recipe = json.dumps([base, spec["packages"], dockerfile, Path(__file__).read_text()])  # how it is built too
    recipe = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    if _existing(client, spec["tag"], recipe):
        return spec["tag"]
    with tempfile.TemporaryDirectory() as tmp:
        env = Path(tmp) / "env"
        uv = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "copy"}
        interpreter = find_interpreter(version)
        subprocess.run(["uv", "venv", "-q", "--relocatable", "--python", interpreter, str(env)], check=True, env=uv)
        subprocess.run(
            ["uv", "pip", "install", "-q", "--python", str(env / "bin" / "python"), *spec["packages"]],
            check=True,
            timeout=600,
            env=uv,
        )
        for link in ("python", "python3", f"python{version}"):  # the copied-in interpreter, not this machine's
            (env / "bin" / link).unlink(missing_ok=True)
            (env / "bin" / link).symlink_to(f"/opt/python{version}/bin/python{version}")
        cfg = env / "pyvenv.cfg"
        lines = [ln for ln in cfg.read_text().splitlines() if not ln.startswith("home")]
        cfg.write_text("\n".join([f"home = /opt/python{version}/bin", *lines]) + "\n")
        context = _tar(f'{dockerfile}\nLABEL {LABEL}="{recipe}"\n', {"env": env})
        client.images.build(
            fileobj=context, custom_context=True, tag=spec["tag"], network_mode="none", rm=True, forcerm=True
        )
    return spec["tag"]


def build_example(client, spec: dict, root: Path) -> str:
    """An example's image as its README builds it (`az acr build -f DOCKERFILE -t TAG CONTEXT`): the stand-ins
    its FROM names first, then its Dockerfile and context (under `root`) built unmodified by the engine, with
    no network, tagged `spec["tag"]`. Returns the tag (remove it with `remove`)."""
    for name in spec.get("stand_ins") or []:
        stand_in(client, name)
    client.images.build(
        path=str(root / spec["context"]),
        dockerfile=str(root / spec["dockerfile"]),
        tag=spec["tag"],
        network_mode="none",
        rm=True,
        forcerm=True,  # a failed step's container too
    )
    return spec["tag"]


def remove(client, tag: str) -> None:
    """Remove an image the corpus built for a case (its stand-ins stay: they are built once per engine)."""
    import docker

    try:
        client.images.remove(tag, force=True)
    except docker.errors.ImageNotFound:
        pass


def run_in(image: str, argv: list[str], folders: list[Path]) -> str:
    """Run `argv` in a throwaway container of `image` (no network; `folders` mounted read-only at the same
    paths; as this process's user, who can read them) and return its output. AssertionError when it fails."""
    import docker

    client = docker.from_env()
    volumes = {str(f): {"bind": str(f), "mode": "ro"} for f in folders}
    try:
        out = client.containers.run(
            image, argv, remove=True, network_mode="none", volumes=volumes, user=f"{os.getuid()}:{os.getgid()}"
        )
    except docker.errors.ContainerError as e:
        raise AssertionError(f"in-process call in {image} failed:\n{(e.stderr or b'').decode(errors='replace')}")
    return out.decode()
