"""How a scoring-server instance process is started: its command line and its environment.

Shared by the process launcher (the local runtime) and the ray runtime's Serve replicas, which run
the same scoring server in a process of their own. Imports nothing outside the standard library
and `mlctl` itself, so a Ray worker can import it without mlctl's dependencies.
"""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

import mlctl

_PR_SET_PDEATHSIG = 1
PACKAGE_PARENT = str(Path(mlctl.__file__).resolve().parent.parent)  # what PYTHONPATH needs to import mlctl


def server_args(spec, entry_script: str, model_dir: str, socket: str, output: str | None = None) -> list[str]:
    """Pure: the scoring server's arguments after the interpreter, for an instance of `spec` (max_concurrent,
    instance_timeout_ms) that sees the script, the model folder and its socket at these paths (a process or
    a replica: the host's paths; a container: its own), and writes all its output to `output` when given
    (a container: the FIFO its host reads) instead of its stdout."""
    return [
        "-m",
        "mlctl.runtime.server",
        "--entry-script",
        entry_script,
        "--model-dir",
        model_dir,
        "--unix-socket",
        socket,
        "--max-concurrent",
        str(spec.max_concurrent),
        "--request-timeout-ms",
        str(spec.instance_timeout_ms),
        *(["--output", output] if output else []),
    ]


def azure_variables(spec, model_dir: str, code_dir: str) -> dict:
    """Pure: the deployment's environment_variables and Azure's names for an instance of `spec` (name,
    scoring_script, environment_variables) that sees the model and code folders at these paths."""
    return {
        **spec.environment_variables,
        "PYTHONUNBUFFERED": "1",
        "AZUREML_MODEL_DIR": model_dir,
        "AZUREML_ENTRY_SCRIPT": spec.scoring_script,
        "AML_APP_ROOT": code_dir,
        "AZUREML_SOURCE_DIRECTORY": code_dir,
        "SERVICE_NAME": spec.name,
    }


def server_command(spec, socket: str | os.PathLike) -> list[str]:
    """Pure: the scoring server's command line for `spec` (python, code_dir, scoring_script, model_dir,
    max_concurrent, instance_timeout_ms) listening on the unix socket `socket`."""
    return [
        spec.python,
        *server_args(spec, os.path.join(spec.code_dir, spec.scoring_script), spec.model_dir, str(socket)),
    ]


def instance_env(spec, base: dict | None = None) -> dict:
    """The instance's environment: `base` (default this process's) minus Python overrides, the spec's
    variables, Azure's names, and PYTHONPATH reaching this mlctl package (the server is not installed
    in the model's virtualenv)."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if k not in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    env.update(azure_variables(spec, spec.model_dir, spec.code_dir))
    env["PYTHONPATH"] = PACKAGE_PARENT
    return env


def die_with_parent() -> None:
    """In a child between fork and exec (`preexec_fn`): SIGKILL it when its parent dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
