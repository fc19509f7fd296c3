"""Start, find and drive an endpoint host (synchronous; HTTP/JSON over its admin unix socket).

`start_host` runs `python -m mlctl.runtime.host` detached (new session, output to
DATA_DIR/logs/ENDPOINT/host.log) and waits until it answers; `HostClient` gives it orders.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import mlctl
from mlctl.waiting import Timeout, wait_until
from mlctl.errors import Diagnostic, MlctlError
from mlctl.privatefiles import ensure_folder, open_private

from . import secrets
from .listen import url_host
from .runfiles import TWIN_EXIT, host_log, is_alive, is_host_process, read_run_record
from .spec import REQUEST_DEFAULTS
from .unixhttp import UnixConnection

PACKAGE_PARENT = str(Path(mlctl.__file__).resolve().parent.parent)
MAX_DRAIN_S = 210.0  # the longest request timeout Azure allows (180 s) + the instance margin + stop
RELOAD_KEYS_S = 5.0  # re-reading one small file takes milliseconds: a host silent this long is stuck
HOST_LOG_HINT = "The endpoint host's own log says more: `mlctl logs ENDPOINT` or .mlctl/logs/ENDPOINT/host.log."
_children: list[subprocess.Popen] = []  # reaped on the next start_host so no zombie lingers


class HostError(MlctlError):
    """The host refused an order or could not be reached; `kind` says which (see docs/host.md).
    An MlctlError, so one that reaches the CLI is printed as an error (exit 1), never a traceback;
    `str()` is the message alone (drivers quote it in their own errors)."""

    def __init__(self, message: str, kind: str = "error", log_tail: str = ""):
        super().__init__(Diagnostic(f"the endpoint host: {message}", HOST_LOG_HINT))
        self.args = (message,)
        self.message, self.kind, self.log_tail = message, kind, log_tail


class DeploymentFailed(HostError):
    """New instances did not become ready (init() raised, process exited, timeout); old ones still serve."""

    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message, "deployment_failed", log_tail)


@dataclass
class HostInfo:
    pid: int
    port: int
    admin_socket: str
    listen: dict = field(default_factory=dict)  # the run record's "listen" (ListenSettings.public())

    @property
    def base_url(self) -> str:
        """`scheme://address:port` of the gateway as bound (0.0.0.0 and :: as such: the caller names the host)."""
        address = self.listen.get("address", "127.0.0.1")
        return f"{self.listen.get('scheme', 'http')}://{url_host(address)}:{self.port}"


def find_host(data_dir, endpoint: str) -> HostInfo | None:
    """The running host of an endpoint, or None (no record, dead pid, or pid recycled)."""
    record = read_run_record(data_dir, endpoint)
    if not record or not is_host_process(record.get("pid")) or not os.path.exists(record.get("admin_socket", "")):
        return None
    return HostInfo(record["pid"], record["port"], record["admin_socket"], record.get("listen") or {})


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_host(
    data_dir,
    endpoint: str,
    *,
    auth_mode: str = "key",
    port: int | None = None,
    listen: dict | None = None,
    timeout: float = 30.0,
    extra_env: dict | None = None,
) -> HostInfo:
    """Start the endpoint's host unless it runs (then return it); creates its keys if missing.
    If another caller starts one at the same moment, one host runs and both callers get it.

    Binds `port` when given (HostError if taken), else the port it had before if free, else any, on
    `listen`'s address (the listen settings, docs/host.md; 127.0.0.1 without them). A running host keeps
    the settings it started with: compare `HostInfo.listen` and restart it to change them. `extra_env`: variables
    added to the host's environment (an in-cluster host's MLCTL_PARENT_PID, mlctl/runtime/ray/ingress.py).
    """
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)
    data_dir = Path(data_dir).resolve()
    running = find_host(data_dir, endpoint)
    if running:
        return running
    secrets.ensure_keys(data_dir, endpoint)
    log_path = host_log(data_dir, endpoint)
    ensure_folder(log_path.parent, what="logs", base=data_dir)
    start_offset = log_path.stat().st_size if log_path.exists() else 0
    cmd = (
        [
            sys.executable,
            "-m",
            "mlctl.runtime.host",
            "--data-dir",
            str(data_dir),
            "--endpoint",
            endpoint,
            "--auth-mode",
            auth_mode,
        ]
        + (["--port", str(port)] if port else [])
        + (["--listen", json.dumps(listen)] if listen else [])
    )
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [PACKAGE_PARENT] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        ),
        **(extra_env or {}),
    )
    fd = open_private(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600, what="logs")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            cwd="/",
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    finally:
        os.close(fd)
    _children.append(proc)

    def started() -> HostInfo | None:
        code = proc.poll()
        if code == TWIN_EXIT:  # a host of this endpoint started at the same moment: use that one
            running = find_host(data_dir, endpoint)
            if running:
                return running
        elif code is not None:
            with open(log_path, "rb") as f:
                f.seek(start_offset)
                tail = f.read().decode("utf-8", "replace")[-4000:]
            raise HostError(
                f"the endpoint host of {endpoint!r} exited with code {proc.returncode}: "
                f"{tail.strip().splitlines()[-1] if tail.strip() else 'no output'}",
                "host_failed",
                tail,
            )
        record = read_run_record(data_dir, endpoint)
        if record and record.get("pid") == proc.pid:
            return HostInfo(proc.pid, record["port"], record["admin_socket"], record.get("listen") or {})
        return None

    try:
        return wait_until(started, timeout, f"the endpoint host of {endpoint!r} is up", interval=0.02)
    except Timeout:
        pass
    proc.kill()
    if proc.poll() == TWIN_EXIT:
        raise HostError(
            f"another endpoint host of {endpoint!r} holds its sockets but did not answer within "
            f"{timeout:.0f}s; see {log_path}",
            "host_failed",
            _log_tail(log_path),
        )
    raise HostError(
        f"the endpoint host of {endpoint!r} did not start within {timeout:.0f}s; see {log_path}",
        "host_failed",
        _log_tail(log_path),
    )


def _answer(status: int, raw: bytes) -> dict:
    """Pure: the JSON object an admin answer holds; HostError when it holds anything else (a plain-text
    500 from a failing handler, a truncated body), quoting its first line."""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    first = raw.decode("utf-8", "replace").strip().splitlines()[:1]
    raise HostError(
        f"it answered HTTP {status} with no JSON" + (f": {first[0][:200]}" if first else ""),
        "error" if status >= 400 else "bad_answer",
    )


class HostClient:
    """Orders to one endpoint host over its admin socket; refusals raise HostError / DeploymentFailed."""

    def __init__(self, host: HostInfo | str):
        self.info = host if isinstance(host, HostInfo) else None
        self.admin_socket = host.admin_socket if isinstance(host, HostInfo) else host

    @classmethod
    def for_endpoint(cls, data_dir, endpoint: str) -> "HostClient":
        info = find_host(data_dir, endpoint)
        if info is None:
            raise HostError(f"the endpoint host of {endpoint!r} is not running", "not_running")
        return cls(info)

    def exchange(self, method: str, path: str, body=None, timeout: float = 30.0) -> tuple[int, bytes]:
        """One admin request: (HTTP status, raw answer); HostError kind "unreachable" when the socket does not
        answer. (The ray runtime's in-cluster hosts carry it out on their node: mlctl/runtime/ray/ingress.py.)"""
        conn = UnixConnection(self.admin_socket, timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise HostError(f"cannot reach the endpoint host at {self.admin_socket}: {e}", "unreachable") from None
        finally:
            conn.close()

    def _call(self, method: str, path: str, body=None, timeout: float = 30.0):
        code, raw = self.exchange(method, path, body, timeout)
        data = _answer(code, raw)
        if code >= 400:
            if data.get("kind") == "deployment_failed":
                raise DeploymentFailed(data.get("message", ""), data.get("log_tail", ""))
            raise HostError(data.get("message", f"HTTP {code}"), data.get("kind", "error"), data.get("log_tail", ""))
        return data

    def status(self) -> dict:
        return self._call("GET", "/status")

    def _spec_order(self, path: str, spec: dict, timeout: float) -> dict:
        """`timeout` bounds the wait for readiness; draining the old instances may add up to
        the request timeout (answers in flight finish), so the socket waits for both."""
        ms = (spec.get("request_settings") or {}).get("request_timeout_ms", REQUEST_DEFAULTS["request_timeout_ms"])
        return self._call("POST", f"{path}?timeout={timeout}", spec, timeout + ms / 1000 * 1.1 + 20)

    def create_deployment(self, spec: dict, timeout: float = 120.0) -> dict:
        """Start a new deployment (its status once every instance is ready); HostError kind "exists" if it does."""
        return self._spec_order(f"/deployments/{spec['name']}", spec, timeout)

    def roll_deployment(self, spec: dict, timeout: float = 120.0) -> dict:
        """New instances beside the old, health-gated, the old drained; HostError kind "not_found" if absent."""
        return self._spec_order(f"/deployments/{spec['name']}/roll", spec, timeout)

    def scale_deployment(self, name: str, count: int, timeout: float = 120.0) -> dict:
        """Add instances (ready first) or drain and stop the highest ones."""
        return self._call(
            "POST", f"/deployments/{name}/scale?timeout={timeout}", {"instance_count": count}, timeout + MAX_DRAIN_S
        )

    def share_load(self, peers: dict) -> dict:
        """Tell each autoscaled deployment what the endpoint's other hosts carry; this host's own figures of each
        (mlctl/runtime/ray/loadshare.py)."""
        return self._call("PUT", "/autoscale/peers", peers, 10.0)

    def set_scaling(self, name: str, scale_settings: dict | None, count: int, timeout: float = 120.0) -> dict:
        """Autoscale within `scale_settings`' range (its count brought into it), or, with None, hold `count`
        fixed; no instance is restarted."""
        body = {"scale_settings": scale_settings, "instance_count": count}
        return self._call("PUT", f"/deployments/{name}/scaling?timeout={timeout}", body, timeout + MAX_DRAIN_S)

    def revive_deployment(self, name: str, timeout: float = 120.0) -> dict:
        """Restart at once the instances that are down (drift repair)."""
        return self._call("POST", f"/deployments/{name}/revive?timeout={timeout}", {}, timeout + MAX_DRAIN_S)

    def remove_deployment(self, name: str) -> None:
        self._call("DELETE", f"/deployments/{name}", timeout=MAX_DRAIN_S)

    def set_traffic(self, traffic: dict, mirror: dict | None = None) -> None:
        self._call("PUT", "/traffic", {"traffic": traffic, "mirror_traffic": mirror or {}})

    def set_auth(self, auth_mode: str) -> None:
        self._call("PUT", "/auth", {"auth_mode": auth_mode})

    def reload_keys(self, timeout: float = RELOAD_KEYS_S) -> None:
        """Have the host re-read its keys file; HostError (kind "unreachable") after `timeout` s of silence."""
        self._call("POST", "/keys/reload", timeout=timeout)

    def reload_tls(self, timeout: float = RELOAD_KEYS_S) -> dict:
        """Have the host re-read its TLS files and serve them to new handshakes; the served certificate's
        {sha256, not_after, subject, ...}. HostError kind "tls_refused" (the old certificate stays served)
        when the files cannot be used, "no_tls" when the host serves plain HTTP."""
        return self._call("POST", "/tls/reload", timeout=timeout)

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop every instance and the host; returns once the host process is gone."""
        pid = self.info.pid if self.info else None
        try:
            self._call("POST", "/shutdown", timeout=10)
        except HostError as e:
            if e.kind != "unreachable":
                raise

        def stopped() -> bool:
            for child in _children:
                child.poll()  # reap the hosts this process started
            return not (pid and is_alive(pid))

        try:
            wait_until(stopped, timeout, f"the endpoint host (pid {pid}) stops", interval=0.02)
        except Timeout:
            pass
        if pid and is_alive(pid):
            raise HostError(f"the endpoint host (pid {pid}) did not stop within {timeout:.0f}s", "stuck")
