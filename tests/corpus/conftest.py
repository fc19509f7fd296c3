"""The corpus's fixtures: the shared cache (MLCTL_CACHE; environments are shared between cases by digest)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_cache(mlctl_cache):
    return mlctl_cache
