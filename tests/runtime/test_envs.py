"""envs.py: real virtualenvs built with uv into the session cache; concurrent and interrupted builds."""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from mlctl.requirements import requirements
from mlctl.runtime.kit.virtualenvs import (
    COMPLETE,
    EnvBuildError,
    build_env,
    env_path,
    read_built,
)

OWN = f"{sys.version_info[0]}.{sys.version_info[1]}"  # the running interpreter: present wherever tests run

BUILD = """
import sys, json
from mlctl.runtime.kit.virtualenvs import build_env
from mlctl.requirements import requirements
built = build_env(sys.argv[1], None, requirements([], sys.argv[2:]),
                  progress=lambda m: print("progress:", m, flush=True))
print("built:", json.dumps(built.observed()), flush=True)
"""


def run_build(digest, *packages):
    return subprocess.Popen(
        [sys.executable, "-c", BUILD, digest, *packages],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def fresh_digest():
    return "sha256:" + uuid.uuid4().hex + uuid.uuid4().hex


def test_build_records_freeze_and_runs_the_packages(env_cache):
    digest = fresh_digest()
    lines = []
    built = build_env(digest, OWN, requirements(["numpy"], ["joblib"]), progress=lines.append)
    assert built.path == str(env_path(digest)) and str(env_cache) in built.path
    assert built.built_with == "uv"
    names = {line.split("==")[0].lower() for line in built.frozen}
    assert {"numpy", "joblib", "aiohttp"} <= names
    assert built.python_version.startswith(OWN + ".")
    out = subprocess.run(
        [built.python_executable, "-c", "import numpy, joblib, aiohttp; print('ok')"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.stdout.strip() == "ok"
    assert any("installing" in m for m in lines)
    assert (env_path(digest) / "freeze.txt").read_text().split() == built.frozen
    # built at its final path: installed scripts' shebangs name the virtualenv's own python there
    f2py = env_path(digest) / "bin" / "f2py"
    assert f2py.read_text().splitlines()[0] == f"#!{built.python_executable}"
    assert (env_path(digest) / COMPLETE).is_file()
    again = build_env(digest, OWN, requirements(["numpy"], ["joblib"]))  # cached: the same build
    assert again == built


def test_two_concurrent_builds_of_one_digest_build_once(env_cache):
    digest = fresh_digest()
    procs = [run_build(digest, "six"), run_build(digest, "six")]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    built = [json.loads(o.split("built: ", 1)[1]) for o in outs]
    assert built[0] == built[1]  # one build, reused by the other
    assert sum("waiting for another build" in o for o in outs) == 1
    assert sum("creating a virtualenv" in o for o in outs) == 1


def test_a_build_killed_half_way_is_rebuilt(env_cache):
    digest = fresh_digest()
    proc = run_build(digest, "six")
    for line in proc.stdout:
        if "installing" in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert env_path(digest).exists() and not (env_path(digest) / COMPLETE).exists()
    assert read_built(digest) is None
    lines = []
    built = build_env(digest, None, requirements([], ["six"]), progress=lines.append)
    assert any("half-built" in m for m in lines)
    assert any(x.lower().startswith("six==") for x in built.frozen)


def test_fallback_without_uv_uses_venv_and_pip(env_cache):
    built = build_env(fresh_digest(), None, requirements([], ["six"]), use_uv=False)
    assert built.built_with == "venv+pip"
    assert any(x.lower().startswith("six==") for x in built.frozen)


def test_failed_build_keeps_the_log_and_quotes_it(env_cache):
    digest = fresh_digest()
    with pytest.raises(EnvBuildError) as e:
        build_env(digest, None, requirements([], ["mlctl-no-such-package-xyz==0.0.1"]))
    assert "mlctl-no-such-package-xyz" in e.value.log_tail
    assert e.value.log_path.exists()
    assert read_built(digest) is None


def test_cache_is_mlctl_cache_else_xdg_else_home(monkeypatch, tmp_path):
    from mlctl.runtime.kit.virtualenvs import cache_dir

    monkeypatch.setenv("MLCTL_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MLCTL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "mlctl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "mlctl"
