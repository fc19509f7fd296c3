"""Fixtures of the ray tests: the session's one Ray cluster (tests/conftest.py, tests/ray/raymachines.py) and projects
on it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
