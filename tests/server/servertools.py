"""Helpers for the scoring-server tests: start real server processes on 127.0.0.1 and call them."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


@dataclass
class Answer:
    status: int
    headers: Dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Server:
    proc: subprocess.Popen
    log_path: Path
    host: str = "127.0.0.1"
    port: int = 0
    done: bool = field(default=False)

    def call(
        self, method: str, path: str, body=None, headers: Optional[Dict[str, str]] = None, timeout: float = 30.0
    ) -> Answer:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, deadline_s: float = 10.0) -> bool:
        """Poll the log (flushed by a timer) for a pattern; True once it shows up."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if re.search(pattern, self.log()):
                return True
            time.sleep(0.05)
        return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)


def wait_for_file(path: Path, deadline_s: float = 20.0) -> None:
    """Until `path` exists (a blocking run() touches it when it has started), at most `deadline_s`."""
    end = time.monotonic() + deadline_s
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.01)


def refuses_connections(host: str, port: int, deadline_s: float = 20.0) -> bool:
    """Poll until a new connection to host:port is refused (the listener closed); False if it never is."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection((host, port), timeout=2).close()
            time.sleep(0.02)
        except OSError:
            return True
    return False


def server_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "SCORING_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def launch(
    log_path: Path, args: Sequence[str], env: Optional[Dict[str, str]] = None, cwd=None, python: str = sys.executable
) -> subprocess.Popen:
    """Start a server process in its own process group, output to log_path."""
    with open(log_path, "wb") as out:
        return subprocess.Popen(
            [python, "-m", "mlctl.runtime.server", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env(env),
            cwd=cwd,
            start_new_session=True,
        )


class Servers:
    """Starts servers and stops every one of them at teardown."""

    def __init__(self, tmp: Path, models: Path) -> None:
        self.tmp = tmp
        self.models = models
        self.started: List[Server] = []

    def start(
        self,
        script,
        *flags: str,
        env=None,
        model_dir=None,
        python=sys.executable,
        expect_ready: bool = True,
        deadline_s: float = 90.0,
    ) -> Server:
        log_path = self.tmp / f"server-{len(self.started)}-{Path(script).stem}.log"
        args = ["--entry-script", str(script), "--model-dir", str(model_dir or self.models), "--port", "0", *flags]
        server = Server(launch(log_path, args, env, python=python), log_path)
        self.started.append(server)
        if not expect_ready:
            return server
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            m = LISTENING.search(server.log())
            if m:
                server.host, server.port = m.group(1), int(m.group(2))
                return server
            if server.proc.poll() is not None:
                raise AssertionError(f"server exited {server.proc.returncode}:\n{server.log()}")
            time.sleep(0.05)
        raise AssertionError(f"server not ready in {deadline_s}s:\n{server.log()}")

    def stop_all(self) -> None:
        for s in self.started:
            s.stop(signal.SIGKILL if s.proc.poll() is None else signal.SIGTERM, timeout=10)
