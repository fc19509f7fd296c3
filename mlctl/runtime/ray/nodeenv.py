"""On a Ray node, inside an actor: the virtualenv of an environment shipped by `mlctl.runtime.ray.packages`.

Ray has unpacked the actor's `py_modules` packages (`packages.py_modules(ref)`) into its per-node cache and put
their folders on the actor's `sys.path`. `materialize(ref)` finds the environment's folder there
(`mlctl_env_<digest>/lib/pythonX.Y/site-packages`) and makes it a virtualenv once per node: a `pyvenv.cfg` whose
`home` is the interpreter (the one shipped with it, `mlctl_python_.../bin`, or this node's own when the Python
X.Y is the same) and `bin/python` linking to it, each written atomically, so actors that start together on one
node agree. It returns the interpreter to run and the variables it needs (`LD_LIBRARY_PATH` reaching a shipped
interpreter's libpython). A node of another CPU architecture, an older C library than the environment was built
against, or a Python it cannot run is a `RuntimeError` naming the node and what differs.

Standard library only: it runs in Ray's worker process, before anything of the environment exists.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import uuid
from pathlib import Path


def _unpacked(folder: str) -> Path:
    """The folder Ray unpacked (a `sys.path` entry holding `folder`); RuntimeError when the actor has none."""
    for entry in sys.path:
        candidate = Path(entry or ".") / folder
        if candidate.is_dir():
            return candidate
    raise RuntimeError(
        f"the package {folder} is not on this actor's sys.path on node {socket.gethostname()}: "
        "the actor's runtime_env must name it in py_modules (mlctl.runtime.ray.packages.py_modules)"
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".") if x.isdigit())


def compatibility_problem(ref: dict, machine: str, glibc: str, python_xy: str) -> str | None:
    """Pure: why a node (its CPU `machine`, C library `glibc`, Python X.Y) cannot run the environment of `ref`
    when no interpreter is shipped with it, None when it can."""
    if ref.get("machine") and machine != ref["machine"]:
        return f"its CPU architecture is {machine} and the environment was built for {ref['machine']}"
    if ref.get("glibc") and glibc and _version_tuple(glibc) < _version_tuple(ref["glibc"]):
        return f"its C library is glibc {glibc}, older than the glibc {ref['glibc']} the environment was built against"
    wanted = ".".join(ref["python_version"].split(".")[:2])
    if ref.get("interpreter") is None and python_xy != wanted:
        return f"it runs Python {python_xy} and the environment needs Python {ref['python_version']}, not shipped"
    return None


def _write_once(path: Path, text: str) -> None:
    if path.is_file() and path.read_text() == text:
        return
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    part.write_text(text)
    os.replace(part, path)


def _link_once(path: Path, target: str) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    os.symlink(target, part)
    os.replace(part, path)


def materialize(ref: dict) -> tuple[str, dict]:
    """(the interpreter of the environment's virtualenv on this node, the variables its process needs)."""
    machine, glibc = platform.machine(), platform.libc_ver()[1]
    node_xy = f"{sys.version_info[0]}.{sys.version_info[1]}"
    problem = compatibility_problem(ref, machine, glibc, node_xy)
    if problem:
        raise RuntimeError(f"node {socket.gethostname()} cannot run this environment: {problem}")
    env_root = _unpacked(ref["env"]["dir"])
    variables: dict = {}
    if ref.get("interpreter"):
        shipped = _unpacked(ref["interpreter"]["dir"])
        executable = shipped / ref["interpreter"]["executable"]
        variables["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(shipped / "lib"), os.environ.get("LD_LIBRARY_PATH", "")) if p
        )
    else:
        executable = Path(getattr(sys, "_base_executable", sys.executable))
    _write_once(
        env_root / "pyvenv.cfg",
        f"home = {executable.parent}\ninclude-system-site-packages = false\nversion = {ref['python_version']}\n",
    )
    (env_root / "bin").mkdir(exist_ok=True)
    _link_once(env_root / "bin" / "python", str(executable))
    return str(env_root / "bin" / "python"), variables
