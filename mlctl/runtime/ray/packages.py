"""Environments shipped to Ray's nodes through the cluster, by content digest: no shared file system.

On the machine that applies (`ship`), the virtualenv mlctl built for an environment (the local runtime's image) is
packed once as a zip of its site-packages, `mlctl_env_<digest>/lib/pythonX.Y/site-packages/...`, and stored in
the cluster's GCS as a Ray package named by the digest of that zip under the project's owner prefix
(`gcs://_ray_pkg_mlctl-<owner>-env-<digest24>.zip`), unless the cluster holds it already. When the environment's
Python (X.Y) is not the cluster's (Ray runs every node and every driver on one Python X.Y: mlctl's own), the
interpreter it was built with goes the same way (`..-python-<digest24>.zip`: the installation without its tests,
headers and site-packages), or, when that interpreter cannot be moved (a system Python under /usr), `ship` is a
clear error naming the nodes and both versions (`PackageError`; the ray runtime's preflight asks
`interpreter_problem` first, so plan says it).

The result is a small dict (`EnvRef`, JSON-able) that the launcher puts into its actors' runtime_env as
`py_modules` URIs (`py_modules(ref)`): Ray downloads each package to a node once, caches it there by its URI,
and keeps it in the GCS while an actor uses it. On the node, `mlctl.runtime.ray.nodeenv.materialize(ref)` makes the
virtualenv from the unpacked folders and says which interpreter to run. Symbolic links are never packed (nothing
outside the folder is reached through one; the interpreter's own links are not needed).

A package must stay under Ray's limit for one GCS object (`GCS_LIMIT`, 512 MiB zipped, Ray's
`RAY_max_grpc_message_size`); docs/runtime.md says what to do beyond it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError
from mlctl.privatefiles import write_atomic
from mlctl.resources import Kind
from mlctl.runtime.kit import virtualenvs

GCS_LIMIT = 512 * 1024 * 1024  # Ray's largest package (ray._private.runtime_env.packaging.GCS_STORAGE_MAX_SIZE)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # every entry's time: the same files make the same zip, hence the same digest
SKIPPED_DIRS = {"__pycache__"}
# what the interpreter does not need to run a scoring server: tests, IDLE, tk, headers, static libraries, pip's wheels
INTERPRETER_SKIPS = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages")


_INTERPRETER_HINT = (
    "Build the environment with a self-contained Python {xy} (`uv python install {xy}`, pyenv), or ask for "
    "Python {cluster} in its conda file."
)


class PackageError(MlctlError):
    """An environment cannot be shipped to the nodes (too large, an interpreter that cannot move)."""


def python_xy(version: str) -> str:
    """Pure: "3.9" of "3.9.18"."""
    return ".".join(version.split(".")[:2])


def cluster_python() -> str:
    """The Python X.Y of the cluster's nodes: Ray refuses a driver on another one, so it is mlctl's own."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def base_prefix(env: Path) -> Path:
    """The installation a virtualenv was made from (its pyvenv.cfg `home` is that installation's bin folder)."""
    for line in (env / "pyvenv.cfg").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            return Path(value.strip()).parent
    raise PackageError(f"the virtualenv {env} names no base interpreter (`home` in pyvenv.cfg)")


def interpreter_problem(prefix: Path, xy: str) -> str | None:
    """Pure over the file tree: why the Python installation at `prefix` cannot be shipped to other machines,
    None when it can (its own bin/pythonX.Y and lib/pythonX.Y/os.py, and not the system's /usr)."""
    if prefix.resolve() in (Path("/usr"), Path("/usr/local"), Path("/")):
        return f"it is the system's Python installation ({prefix}), which cannot be moved to other machines"
    if not (prefix / "bin" / f"python{xy}").is_file() or not (prefix / "lib" / f"python{xy}" / "os.py").is_file():
        return f"{prefix} is not a self-contained Python installation (no bin/python{xy} and lib/python{xy}/os.py)"
    return None


def interpreter_of(image_attributes: dict) -> tuple[str, Path] | None:
    """(version, installation prefix) of the interpreter an image is (or would be) built with here; None when
    there is none (the local preflight says so)."""
    from mlctl.runtime.kit.pythons import find_python

    built = virtualenvs.read_built(image_attributes.get("spec_digest", ""))
    if built is not None:
        return built.python_version, base_prefix(Path(built.path))
    try:
        found = find_python(image_attributes.get("python"))
    except MlctlError:
        return None
    return found.version_text, Path(found.executable).resolve().parent.parent


def shipping_problems(resources, nodes: str | None = None) -> list[Diagnostic]:
    """Every image on a Python the cluster's nodes do not run whose interpreter cannot be shipped to them (with
    file and line): what `ship` would refuse, said at plan. `nodes` names them in the message (default: asked
    from the connected cluster, only when there is a problem)."""
    problems = []
    for r in resources:
        if r.kind is not Kind.IMAGE:
            continue
        found = interpreter_of(r.attributes)
        if found is None or python_xy(found[0]) == cluster_python():
            continue
        why = interpreter_problem(found[1], python_xy(found[0]))
        if why:
            nodes = nodes or nodes_named()
            problems.append(
                Diagnostic(
                    f"{nodes} run Python {cluster_python()} and environment {r.attributes.get('environment')!r} "
                    f"needs Python {found[0]}, which cannot be shipped to them: {why}",
                    _INTERPRETER_HINT.format(xy=python_xy(found[0]), cluster=cluster_python()),
                    file=r.source.file if r.source else None,
                    line=r.source.line if r.source else None,
                    address=str(r.address),
                )
            )
    return problems


def nodes_named() -> str:
    """The cluster's live nodes for a message ("the cluster's nodes 10.0.0.5, 10.0.0.6"; the process is connected)."""
    from mlctl.runtime.ray import cluster

    addresses = sorted({n["NodeManagerAddress"] for n in cluster.nodes() if n.get("Alive")})
    return f"the cluster's nodes {', '.join(addresses)}" if addresses else "the cluster's nodes"


def _files(root: Path, skip_dirs: set[str]) -> Iterator[Path]:
    """Regular files under `root`, sorted, without symbolic links and without the folders named in `skip_dirs`."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file() or name.endswith(".pyc"):
                continue
            yield path


def pack(entries: list[tuple[Path, str]], out: Path, limit: int = GCS_LIMIT) -> str:
    """Write the zip `out` of (file, name in the zip) `entries` with fixed times and modes, atomically; its
    "sha256:..." digest. PackageError when it reaches `limit` bytes (what then: docs/runtime.md)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f"{out.name}.{os.getpid()}.part")
    try:
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for path, name in entries:
                info = zipfile.ZipInfo(name, ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | (0o755 if os.access(path, os.X_OK) else 0o644)) << 16
                with open(path, "rb") as src, z.open(info, "w") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                if part.stat().st_size >= limit:
                    raise PackageError(
                        f"the package {out.name} is larger than Ray's limit of {limit // (1024 * 1024)} MiB for one "
                        "package in the cluster",
                        detail="docs/runtime.md (the ray runtime, environments) says what to do beyond it: a smaller "
                        "environment, or the packages in the nodes' image.",
                    )
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        os.replace(part, out)
        return "sha256:" + digest.hexdigest()
    finally:
        part.unlink(missing_ok=True)


def env_entries(env: Path, top: str) -> list[tuple[Path, str]]:
    """Pure over the file tree: the site-packages of virtualenv `env`, named under `top/lib/pythonX.Y/`."""
    sites = sorted(env.glob("lib/python*/site-packages"))
    if not sites:
        raise PackageError(f"the virtualenv {env} has no lib/pythonX.Y/site-packages")
    site = sites[0]
    prefix = f"{top}/lib/{site.parent.name}/site-packages/"
    return [(p, prefix + p.relative_to(site).as_posix()) for p in _files(site, SKIPPED_DIRS)]


def interpreter_entries(prefix: Path, xy: str, top: str) -> list[tuple[Path, str]]:
    """Pure over the file tree: what runs the interpreter at `prefix`: bin/pythonX.Y, lib/ (the standard library,
    its extension modules, libpython) without tests, tk, static libraries and site-packages."""
    found = [(prefix / "bin" / f"python{xy}", f"{top}/bin/python{xy}")]
    lib = prefix / "lib"
    for p in _files(lib, SKIPPED_DIRS | set(INTERPRETER_SKIPS)):
        rel = p.relative_to(lib)
        if p.suffix == ".a" or rel.parts[0] in ("pkgconfig",) or rel.parts[0].startswith("tcl"):
            continue
        if len(rel.parts) > 1 and rel.parts[1].startswith("config-"):
            continue
        found.append((p, f"{top}/lib/{rel.as_posix()}"))
    return found


def package_uri(owner: str, what: str, digest: str) -> str:
    """Pure: the package's name in the cluster, under the project's owner prefix, by the zip's content digest."""
    return f"gcs://_ray_pkg_mlctl-{owner}-{what}-{digest.split(':', 1)[-1][:24]}.zip"


def _packed(kind: str, key: str, entries_of, limit: int) -> tuple[Path, str]:
    """The zip of `kind` for cache key `key` (packed once into $MLCTL_CACHE/ray-packages), and its digest."""
    folder = virtualenvs.cache_dir() / "ray-packages"
    out, note = folder / f"{kind}-{key}.zip", folder / f"{kind}-{key}.json"
    try:
        digest = json.loads(note.read_text())["digest"]
        if out.is_file():
            return out, digest
    except (OSError, ValueError, KeyError):
        pass
    digest = pack(entries_of(), out, limit)
    write_atomic(note, json.dumps({"digest": digest}).encode())
    return out, digest


def _upload(uri: str, zipped: Path) -> None:
    """Store the zip in the cluster's GCS under `uri` unless it holds it already (the process is connected), and pin
    it for Ray's pin time (10 min): it stays until the actors about to name it hold it themselves (a package
    nothing holds then, the GCS deletes: no environment stays in the head's memory unused)."""
    from ray._private.runtime_env.packaging import package_exists, pin_runtime_env_uri, upload_package_to_gcs

    if not package_exists(uri):
        upload_package_to_gcs(uri, zipped.read_bytes())
    pin_runtime_env_uri(uri)


def ship(owner: str, image_digest: str, nodes: str = "the cluster's nodes", limit: int = GCS_LIMIT) -> dict:
    """Pack (once) and upload (unless there) the virtualenv of `image_digest` and, when the cluster's Python is not
    its own, its interpreter; the `EnvRef` dict the launcher hands to the nodes (see the module docstring).
    PackageError when it cannot be shipped; `nodes` names the nodes in that message."""
    built = virtualenvs.read_built(image_digest)
    if built is None:
        raise PackageError(f"the virtualenv of image {image_digest} is not built on this machine")
    env = Path(built.path)
    xy, top = python_xy(built.python_version), f"mlctl_env_{virtualenvs.env_key(image_digest)}"
    key = f"{virtualenvs.env_key(image_digest)}-{int(built.built_at)}"  # a rebuild is packed again
    zipped, digest = _packed("env", key, lambda: env_entries(env, top), limit)
    ref: dict = {
        "python_version": built.python_version,
        "machine": platform.machine(),
        "glibc": platform.libc_ver()[1],
        "env": {"uri": package_uri(owner, "env", digest), "digest": digest, "dir": top},
        "interpreter": None,
    }
    if xy != cluster_python():
        prefix = base_prefix(env)
        why = interpreter_problem(prefix, xy)
        if why:
            raise PackageError(
                f"{nodes} run Python {cluster_python()} and the environment needs Python {built.python_version}, "
                f"which cannot be shipped to them: {why}",
                detail=_INTERPRETER_HINT.format(xy=xy, cluster=cluster_python()),
            )
        ikey = f"{built.python_version}-{hashlib.sha256(str(prefix.resolve()).encode()).hexdigest()[:16]}"
        itop = "mlctl_python_" + ikey.replace(".", "_").replace("-", "_")
        izipped, idigest = _packed("python", ikey, lambda: interpreter_entries(prefix, xy, itop), limit)
        ref["interpreter"] = {
            "uri": package_uri(owner, "python", idigest),
            "digest": idigest,
            "dir": itop,
            "executable": f"bin/python{xy}",
        }
        _upload(ref["interpreter"]["uri"], izipped)
    _upload(ref["env"]["uri"], zipped)
    return ref


def py_modules(ref: dict) -> list[str]:
    """Pure: the runtime_env `py_modules` URIs that bring `ref`'s packages to a node."""
    return [ref["env"]["uri"]] + ([ref["interpreter"]["uri"]] if ref.get("interpreter") else [])
