"""Azure's own scoring server (azureml-inference-server-http from PyPI) in a test-only virtualenv, started on
127.0.0.1 beside mlctl's to compare answers on the same script."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from servertools import ROOT, Server, server_env

AZURE_PKG = "azureml-inference-server-http==1.5.1"
WRAPPER = ROOT / "bench" / "server" / "azure_wrapper.py"  # binds 127.0.0.1 (gunicorn would bind 0.0.0.0)


def azure_venv(where: Path) -> Path:
    """A virtualenv under `where` with the Azure server installed by uv; returns its python."""
    from mlctl.runtime.kit.virtualenvs import uv_command

    uv = uv_command()
    assert uv is not None, "uv is needed (it is a dependency of mlctl's dev environment)"
    venv = where / "azure-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=300)
        subprocess.run([*uv, "pip", "install", "-q", "--python", str(py), AZURE_PKG], check=True, timeout=600)
    return py


def start_azure(py: Path, script: Path, model_dir: Path, port: int, log: Path, deadline_s: float = 120.0) -> Server:
    """Azure's server on `port` with one worker, ready (GET / answers) within `deadline_s`."""
    env = {k: v for k, v in server_env().items() if k != "PYTHONPATH"}
    env["AML_APP_ROOT"] = str(script.parent)
    cmd = [str(py), str(WRAPPER), "--entry_script", str(script), "--model_dir", str(model_dir), "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd + ["--worker_count", "1"], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = Server(proc, log, port=port)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, f"Azure's server exited {proc.returncode}:\n{server.log()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise AssertionError(f"Azure's server not ready after {deadline_s}s:\n{server.log()[-3000:]}")
