"""Fixtures for the scoring-server tests: tiny trained models and real server processes on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servertools import SCRIPTS, Server, Servers


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Path:
    """A model directory with a diabetes Ridge (pickled, and its weights as JSON for scripts/kitchen.py) and an iris
    LogisticRegression, trained here."""
    import joblib
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.linear_model import LogisticRegression, Ridge

    d = tmp_path_factory.mktemp("models")
    X, y = load_diabetes(return_X_y=True)
    ridge = Ridge(alpha=0.5).fit(X, y)
    joblib.dump(ridge, d / "diabetes.pkl")
    (d / "kitchen-ridge.json").write_text(
        json.dumps({"coef": ridge.coef_.tolist(), "intercept": float(ridge.intercept_)})
    )
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), d / "iris.pkl")
    return d


@pytest.fixture(scope="session")
def session_servers(tmp_path_factory, models):
    servers = Servers(tmp_path_factory.mktemp("servers"), models)
    yield servers
    servers.stop_all()


@pytest.fixture
def servers(tmp_path, models):
    s = Servers(tmp_path, models)
    yield s
    s.stop_all()


@pytest.fixture(scope="session")
def kitchen(session_servers) -> Server:
    return session_servers.start(SCRIPTS / "kitchen.py")


@pytest.fixture(scope="session")
def schema_server(session_servers) -> Server:
    return session_servers.start(SCRIPTS / "diabetes_schema.py")


@pytest.fixture(scope="session")
def raw_server(session_servers) -> Server:
    return session_servers.start(SCRIPTS / "raw.py")


@pytest.fixture(scope="session")
def diabetes(models):
    """(the trained Ridge, two sample rows) to compare answers with predict()."""
    import joblib
    from sklearn.datasets import load_diabetes

    X, _ = load_diabetes(return_X_y=True)
    return joblib.load(models / "diabetes.pkl"), X[:2].tolist()


@pytest.fixture(params=["uvloop", "asyncio"])
def loop_mode(request) -> dict:
    """The environment that runs the servers a test starts on event loop `mode` (MLCTL_SERVER_LOOP): with
    uvloop and without."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return {"MLCTL_SERVER_LOOP": request.param}
