"""End-to-end fixtures: real projects applied with the real CLI, real endpoint hosts and virtualenvs.

Virtualenvs go to MLCTL_CACHE (as set by CI), else `~/.cache/mlctl-tests`, keyed by image digest,
so each environment is built once and re-runs reuse it. Every test project is destroyed and every
host process it started is killed (by PID) when the test ends. Helpers live in e2e_support.py.
"""

from __future__ import annotations

import shutil

import pytest
from e2e_support import EXAMPLE, SplitProject, cleanup


@pytest.fixture(scope="session", autouse=True)
def _session_cache(mlctl_cache):
    """Every e2e test runs with the session's MLCTL_CACHE (tests/conftest.py)."""
    return mlctl_cache


@pytest.fixture
def split_project(tmp_path):
    p = SplitProject(tmp_path / "proj", "split")
    yield p
    cleanup(p.root)


@pytest.fixture
def example_project(tmp_path, trained_model):
    """A copy of examples/diabetes with its model trained."""
    root = tmp_path / "diabetes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlctl", "__pycache__", "model.pkl"))
    (root / "model").mkdir(exist_ok=True)
    shutil.copy(trained_model, root / "model" / "model.pkl")
    yield root
    cleanup(root)
