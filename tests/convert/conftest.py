"""Fixtures for `mlctl convert v1`: a v1-era copy of examples/diabetes (v1_support.make_v1_project).
The CLI runs through the e2e tests' helper (tests/e2e/e2e_support.mlctl)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from v1_support import make_v1_project  # noqa: E402


@pytest.fixture
def v1_project(tmp_path) -> Path:
    return make_v1_project(tmp_path / "diabetes")
