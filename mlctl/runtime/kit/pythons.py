"""Python interpreters on this machine: find one that satisfies an environment's version request.

A request is a plain version ("3.11", "3.11.7": that release series) or pip-style clauses
(">=3.9,<3.12"). Search order: `uv python find` (uv's managed and discovered interpreters), then
`pythonX.Y` / `python3` on PATH, then pyenv's versions folder; each candidate is asked its
version by running it. No interpreter is ever downloaded.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from mlctl import pythonversions
from mlctl.errors import Diagnostic, MlctlError


@dataclass(frozen=True)
class Interpreter:
    executable: str
    version: tuple[int, ...]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def satisfies(version: tuple[int, ...], request: str | None) -> bool:
    """Pure: does a python `version` (3, 11, 7) satisfy `request` ("3.11", ">=3.9,<3.12", None)? PEP 440, as
    `mlctl.pythonversions.satisfies`; MlctlError when `request` is not a version request."""
    try:
        return pythonversions.satisfies(version, request)
    except ValueError:
        raise MlctlError(
            f"'{request}' is not a Python version request",
            detail='Use a version such as "3.11" or clauses such as ">=3.9,<3.12".',
        ) from None


@functools.lru_cache(maxsize=256)
def probe(executable: str) -> Interpreter | None:
    """Run an interpreter to learn its version (None when it does not run)."""
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:3], sys.executable)"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    fields = out.stdout.split()
    return Interpreter(
        os.path.realpath(fields[3]) if len(fields) > 3 else executable, tuple(int(x) for x in fields[:3])
    )


def _uv_candidates(request: str | None) -> list[str]:
    from mlctl.runtime.kit.virtualenvs import uv_command

    uv = uv_command()
    if uv is None:
        return []
    arg = request if request and request[0].isdigit() else (request or "")
    try:
        out = subprocess.run(
            [*uv, "python", "find", "--no-python-downloads", *([arg] if arg else [])],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [out.stdout.strip()] if out.returncode == 0 and out.stdout.strip() else []


def _path_candidates(request: str | None) -> list[str]:
    names = []
    m = re.match(r"(?:==|=|>=|~=)?(\d+)\.(\d+)", request or "")
    if m:
        names.append(f"python{m.group(1)}.{m.group(2)}")
    names += [f"python3.{minor}" for minor in range(20, 7, -1)] + ["python3"]
    found = [shutil.which(n) for n in names]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    pyenv = sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3")), reverse=True)
    return [f for f in found if f] + pyenv


def find_python(request: str | None) -> Interpreter:
    """An interpreter satisfying `request` (None: mlctl's own). MlctlError saying what to install."""
    if not request:
        return Interpreter(sys.executable, tuple(sys.version_info[:3]))
    own = Interpreter(sys.executable, tuple(sys.version_info[:3]))
    if satisfies(own.version, request):
        return own
    seen = set()
    for candidate in _uv_candidates(request) + _path_candidates(request):
        if candidate in seen:
            continue
        seen.add(candidate)
        interp = probe(candidate)
        if interp and satisfies(interp.version, request):
            return interp
    raise MlctlError(
        Diagnostic(f"No Python interpreter on this machine satisfies python {request}", install_hint(request))
    )


def install_hint(request: str) -> str:
    """Pure: how to get a Python meeting `request`: uv installs 3.8 and later; older releases come from pyenv
    (`pyenv install 3.7`) or the system's packages, never from uv, which cannot install them."""
    want = request.lstrip("=<>~!").split(",")[0]
    m = re.match(r"(\d+)\.(\d+)", want)
    old = m is not None and (int(m.group(1)), int(m.group(2))) < (3, 8)
    how = f"`pyenv install {m.group(1)}.{m.group(2)}`" if old and m else f"`uv python install {want}`"
    return f"Install one (for example {how} or your package manager), or change the python version in the conda file."
