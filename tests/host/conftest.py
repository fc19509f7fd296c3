"""Fixtures for endpoint-host tests: a tiny linear model (as JSON, and as an sklearn pickle for the fork-server
tests), the test score.py, real hosts that clean up."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from hosttools import SCORE, Host


def _ridge():
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    return Ridge(alpha=1.0).fit(X, y)


@pytest.fixture(scope="session")
def sklearn_model_dir(tmp_path_factory) -> Path:
    """The Ridge pickled (model.pkl): for the fork-server tests, whose fork servers preload what a model names."""
    d = tmp_path_factory.mktemp("sklearn-model")
    with open(d / "model.pkl", "wb") as f:
        pickle.dump(_ridge(), f)
    d.chmod(0o755)  # pytest makes it 0700; as root, instances run as their own uid (like mlctl's model store: 0755)
    return d


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """The same Ridge's weights as JSON (model.json), which hosttools.SCORE predicts with in plain Python: its
    instances and fork servers import no numpy, scipy or sklearn (about 2 s of CPU each, hundreds in tests/host)."""
    model = _ridge()
    d = tmp_path_factory.mktemp("model")
    (d / "model.json").write_text(json.dumps({"coef": model.coef_.tolist(), "intercept": float(model.intercept_)}))
    d.chmod(0o755)
    return d


@pytest.fixture(scope="session")
def code_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("code")
    (d / "score.py").write_text(SCORE)
    d.chmod(0o755)  # readable by a confined instance's uid, as mlctl's code snapshots are
    return d


@pytest.fixture
def make_host(tmp_path, code_dir, model_dir):
    hosts: list[Host] = []

    def make(name: str = "ep", data_dir: Path | None = None, model: Path | None = None, **start) -> Host:
        host = Host(data_dir or tmp_path / "data", name, code_dir, model or model_dir, **start)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


@pytest.fixture(params=["uvloop", "asyncio"])
def loop_mode(request, monkeypatch) -> str:
    """The event loop the hosts this test starts run on (MLCTL_HOST_LOOP): with uvloop and without."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.setenv("MLCTL_HOST_LOOP", request.param)
    return request.param
