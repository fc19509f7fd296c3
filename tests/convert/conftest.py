"""Fixtures for `mlctl convert v1`: a v1-era copy of examples/diabetes (its scoring code, conda file
and a model, no current-form YAML) with the v1 files of tests/convert/v1/diabetes in its v1/ folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"
V1 = Path(__file__).parent / "v1" / "diabetes"


def make_v1_project(root: Path, model: bytes | Path = b"not a real model") -> Path:
    """`root` as a v1 repository of the diabetes example: onlinescoring/, environment/, model/model.pkl
    (the bytes given, or a copy of a trained model), v1/*.json; no endpoint YAML."""
    def current_form(folder, names):   # the example's own endpoint YAML, and what runs leave behind
        top = Path(folder) == EXAMPLE
        return [n for n in names if n in (".mlctl", "__pycache__") or top and (n.endswith(".yml") or n in ("legacy", "model"))]

    shutil.copytree(EXAMPLE, root, ignore=current_form)
    (root / "model").mkdir()
    if isinstance(model, Path):
        shutil.copy(model, root / "model" / "model.pkl")
    else:
        (root / "model" / "model.pkl").write_bytes(model)
    shutil.copytree(V1, root / "v1")
    return root


def mlctl(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, in `project` (-C)."""
    proc = subprocess.run([sys.executable, "-m", "mlctl.cli", "-C", str(project), *args],
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"mlctl {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def v1_project(tmp_path) -> Path:
    return make_v1_project(tmp_path / "diabetes")
