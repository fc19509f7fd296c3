"""Warm spare containers, the pure parts: which settings a spare must share with the instance that claims it, when
a deployment wants spares, and what a spare accepts as a claim; the spare's interpreter as a process here: it
refuses when an import starts a thread, and becomes the scoring server its claim describes
(tests/docker/test_spare_docker.py runs spares in containers)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import struct
import subprocess
import sys

import pytest

from mlctl.runtime.docker.spares import is_wanted, spare_key
from mlctl.runtime.host.spec import ServingSpec
from mlctl.runtime.server.spare import request_of
from mlctl.waiting import wait_until


def spec(**launch) -> ServingSpec:
    return ServingSpec.from_dict(
        {
            "name": "blue",
            "digest": "sha256:b",
            "python": "/usr/bin/python3",
            "code_dir": "/s/code",
            "scoring_script": "score.py",
            "model_dir": "/s/model",
            "instance_count": 1,
            "launcher": "container",
            "launch": {"image": "mlctl/env:1", "memory_bytes": 2**30, **launch},
        }
    )


def test_a_spare_matches_an_instance_of_the_same_image_variables_uid_and_limits_only():
    base = spec()
    assert spare_key(base, 7) == spare_key(dataclasses.replace(base, digest="sha256:other"), 7)  # another version
    assert spare_key(base, 7) != spare_key(base, 8)
    assert spare_key(base, 7) != spare_key(spec(memory_bytes=2**31), 7)
    assert spare_key(base, 7) != spare_key(spec(image="mlctl/env:2"), 7)
    assert spare_key(base, 7) != spare_key(spec(read_only=False), 7)
    assert spare_key(base, 7) != spare_key(dataclasses.replace(base, environment_variables={"OMP_NUM_THREADS": "1"}), 7)


def test_spares_are_wanted_only_when_the_project_says_so():
    assert not is_wanted(spec())
    assert not is_wanted(spec(spare_container=False))
    assert is_wanted(spec(spare_container=True))


def test_a_claim_is_checked_for_its_types():
    argv, env, cwd, shadowed = request_of(
        {"argv": ["--x"], "env": {"A": "b"}, "cwd": "/c", "shadowed": ["utils", "mlctl"]}
    )
    assert (argv, env, cwd, shadowed) == (["--x"], {"A": "b"}, "/c", {"utils"})  # mlctl is never shadowed
    for bad in (
        {"argv": "x", "env": {}, "cwd": "/"},
        {"argv": [], "env": {"A": 1}, "cwd": "/"},
        {"argv": [], "env": {}},
    ):
        with pytest.raises(ValueError):
            request_of(bad)


def spare_process(tmp_path, *preload: str, env: dict | None = None) -> subprocess.Popen:
    """The spare's interpreter as a process here (its container is not needed for its protocol)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlctl.runtime.server.spare",
            "--socket",
            str(tmp_path / "spare.sock"),
            "--preload",
            *preload,
        ],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_a_spare_whose_imports_start_a_thread_refuses(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "spins.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    )
    proc = spare_process(tmp_path, "json", "spins", env={"PYTHONPATH": f"{lib}:{os.environ.get('PYTHONPATH', '')}"})
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, out
    assert b"refused: importing spins started a Python thread" in out
    assert not (tmp_path / "spare.sock").exists()


def test_a_claimed_spare_becomes_the_scoring_server_its_claim_describes(tmp_path):
    code, model = tmp_path / "code", tmp_path / "model"
    code.mkdir()
    model.mkdir()
    (code / "score.py").write_text(
        "import os\ndef init():\n    pass\ndef run(raw):\n    return [os.getcwd(), os.environ['MARK']]\n"
    )
    proc = spare_process(tmp_path, "json")
    try:
        assert wait_until(
            lambda: (tmp_path / "spare.sock").exists() or proc.poll() is not None, 120, "the spare listens"
        )
        assert proc.poll() is None
        server = tmp_path / "server.sock"
        argv = ["--entry-script", str(code / "score.py"), "--model-dir", str(model), "--unix-socket", str(server)]
        claim = json.dumps(
            {"argv": argv, "env": {**os.environ, "MARK": "m"}, "cwd": str(code), "shadowed": []}
        ).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(60)
            conn.connect(str(tmp_path / "spare.sock"))
            conn.sendall(struct.pack(">I", len(claim)) + claim)
            assert conn.makefile("rb").readline() == b'{"ok": true}\n'
        assert wait_until(lambda: server.exists() or proc.poll() is not None, 120, "the server listens")
        assert not (tmp_path / "spare.sock").exists()  # the spare's socket is gone once claimed

        def answer():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(str(server))
                s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return data

        assert wait_until(lambda: b" 200 " in answer().split(b"\r\n")[0], 60, "the server answers")
        assert json.loads(answer().split(b"\r\n\r\n", 1)[1]) == [str(code), "m"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)
