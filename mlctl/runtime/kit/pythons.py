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

from mlctl.errors import Diagnostic, MlctlError


@dataclass(frozen=True)
class Interpreter:
    executable: str
    version: tuple[int, ...]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def satisfies(version: tuple[int, ...], request: str | None) -> bool:
    """Pure: does a python `version` (3, 11, 7) satisfy `request` ("3.11", ">=3.9,<3.12", None)?"""
    if not request:
        return True
    for clause in request.replace(" ", "").split(","):
        if not clause:
            continue
        m = re.fullmatch(r"(==|>=|<=|!=|~=|>|<|=)?([0-9.]+?)(\.\*)?", clause)
        if not m:
            raise MlctlError(
                f"'{request}' is not a Python version request",
                detail='Use a version such as "3.11" or clauses such as ">=3.9,<3.12".',
            )
        op, want = m.group(1) or "==", _parse_version(m.group(2))
        prefix = version[: len(want)]
        padded = version + (0,) * (len(want) - len(version))
        ok = {
            "==": prefix == want,
            "=": prefix == want,
            "!=": prefix != want,
            ">=": padded >= want,
            "<=": prefix <= want,
            ">": prefix > want,
            "<": padded < want,
            "~=": padded >= want and version[: len(want) - 1] == want[:-1],
        }[op]
        if not ok:
            return False
    return True


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
        Diagnostic(
            f"No Python interpreter on this machine satisfies python {request}",
            f"Install one (for example `uv python install {request.lstrip('=<>~!')}` or your package manager), "
            "or change the python version in the conda file.",
        )
    )
