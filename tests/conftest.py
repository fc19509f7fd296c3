"""Shared test fixtures. Per-area fixtures live in each tests/<area>/conftest.py."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mlctl_cache():
    """MLCTL_CACHE for the CLI subprocesses: CI's when set, else a cache kept across test sessions
    (`~/.cache/mlctl-tests`: virtualenvs and images are built once and reused)."""
    old = os.environ.get("MLCTL_CACHE")
    if not old:
        os.environ["MLCTL_CACHE"] = str(Path.home() / ".cache" / "mlctl-tests")
    yield Path(os.environ["MLCTL_CACHE"])
    if not old:
        os.environ.pop("MLCTL_CACHE", None)
