"""The scoring server on Python 3.7, the floor (docs/compatibility.md): the aiohttp 3.8 line, the one that installs
there, as the local runtime installs it (mlctl.runtime.kit.virtualenvs.SERVER_PACKAGES; wheels only). A real server on
a real 3.7 interpreter: health, scoring, a script error, swagger, a clean stop."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_lifecycle import _uv

from mlctl.runtime.kit.virtualenvs import SERVER_PACKAGES

SCRIPT = """
import json

def init():
    global scale
    scale = 3

def run(raw_data):
    x = json.loads(raw_data)["x"]
    if x < 0:
        raise ValueError("negative")
    return {"y": x * scale}
"""


def _python37() -> str | None:
    roots = [Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"]
    found = sorted(p for root in roots if root.is_dir() for p in root.glob("3.7.*/bin/python3.7"))
    return str(found[-1]) if found else None


@pytest.fixture(scope="session")
def python37_env(tmp_path_factory):
    python = _python37()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs a Python 3.7 (pyenv install 3.7): the server's floor is tested on it")
        pytest.skip("no Python 3.7 interpreter (pyenv install 3.7)")
    cache = Path(os.environ.get("MLCTL_CACHE") or tmp_path_factory.mktemp("cache"))
    venv = cache / "server-test-py37-aiohttp38"
    if not (venv / ".complete").exists():
        subprocess.run([_uv(), "venv", "-q", "--python", python, str(venv)], check=True, timeout=120)
        subprocess.run(
            [
                _uv(),
                "pip",
                "install",
                "-q",
                "--only-binary",
                ":all:",
                "--python",
                str(venv / "bin" / "python"),
                *SERVER_PACKAGES,
            ],
            check=True,
            timeout=300,
        )
        (venv / ".complete").write_text("")
    return venv / "bin" / "python"


def test_serves_on_python_37_with_aiohttp_38(servers, tmp_path, python37_env):
    probe = "import sys, aiohttp; print(sys.version_info[:2], aiohttp.__version__.split('.')[:2])"
    out = subprocess.run([str(python37_env), "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(3, 7) ['3', '8']"
    script = tmp_path / "score.py"
    script.write_text(SCRIPT)
    server = servers.start(script, python=str(python37_env))
    assert server.call("GET", "/").status == 200
    a = server.call("POST", "/score", {"x": 14})
    assert (a.status, a.json()) == (200, {"y": 42})
    assert server.call("POST", "/score", {"x": -1}).status == 500
    assert server.call("GET", "/swagger.json").status == 200
    assert server.stop() == 0
    assert "Python 3.7" in server.log()
