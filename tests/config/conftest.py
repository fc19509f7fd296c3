"""Fixtures for the loader tests: a trained copy of the diabetes example, and small projects on disk."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"


@pytest.fixture(scope="session")
def trained_example(tmp_path_factory) -> Path:
    """A copy of examples/diabetes with its model trained by the example's own train.py (a real run)."""
    root = tmp_path_factory.mktemp("example") / "diabetes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("model", ".mlctl", "__pycache__"))
    (root / ".git").mkdir()  # a git work tree, as the repository is: legacy/ names ../model/ inside it
    subprocess.run([sys.executable, str(root / "train.py")], check=True, capture_output=True, timeout=120)
    assert (root / "model" / "model.pkl").is_file()
    return root
