"""Helpers of the docker runtime's tests (fixtures are in conftest.py; this module is imported by name,
as e2e_support is, since every tests/ folder has a conftest module of its own)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"


def example_copy(root: Path) -> Path:
    """A copy of examples/diabetes at `root` with a stand-in model file (enough to load and build
    its image; a test that scores trains the real model)."""
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlctl", "__pycache__", "model"))
    (root / "model").mkdir()
    (root / "model" / "model.pkl").write_bytes(b"stand-in")
    return root
