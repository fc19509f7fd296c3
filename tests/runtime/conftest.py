"""Fixtures for the local runtime tests: a per-session virtualenv cache (MLCTL_CACHE)."""

import os

import pytest


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory):
    """MLCTL_CACHE for this test session (virtualenvs are built once per session, never per test)."""
    path = tmp_path_factory.mktemp("mlctl-cache")
    old = os.environ.get("MLCTL_CACHE")
    os.environ["MLCTL_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("MLCTL_CACHE", None)
    else:
        os.environ["MLCTL_CACHE"] = old
