"""Server settings: command-line flags with the Azure environment variables as fallbacks."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

DEFAULT_PORT = 5001
DEFAULT_MAX_QUEUE = 512
DEFAULT_MAX_ABANDONED = 8  # run() calls past their timeout still running, past which the server is unhealthy
DEFAULT_TIMEOUT_MS = 3_600_000
DEFAULT_MAX_BODY = 100 * 1024 * 1024
DEFAULT_INLINE_MS = 1.0  # run() calls shorter than this run on the loop's thread (mlctl.runtime.server.inline)
MAX_WORKERS = 64  # WORKER_COUNT above this is refused (a typo, not a machine: each worker loads the model)
LOOPS = ("auto", "uvloop", "asyncio")
# the environment variables of a deployment that the server itself reads and can refuse (`mlctl validate`
# checks them with parse_settings, as each instance will)
SERVER_VARIABLES = (
    "WORKER_COUNT",
    "MLCTL_INLINE_RUN_MS",
    "MLCTL_SERVER_LOOP",
    "MLCTL_SWITCH_INTERVAL",
    "MLCTL_MAX_ABANDONED_RUNS",
    "AZUREML_LOG_LEVEL",
)


class SettingsError(Exception):
    """A flag or environment variable has a bad value."""


@dataclass(frozen=True)
class Settings:
    entry_script: str
    model_dir: Optional[str]
    app_root: str
    source_dir: Optional[str]
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix_socket: Optional[str] = None
    also_unix_socket: Optional[str] = None  # a unix socket beside the TCP port (the ray runtime's same-node hop)
    reuse_port: bool = False
    max_concurrent: int = 1
    max_queue: int = DEFAULT_MAX_QUEUE
    max_abandoned: int = DEFAULT_MAX_ABANDONED
    request_timeout_ms: int = DEFAULT_TIMEOUT_MS
    max_body_bytes: int = DEFAULT_MAX_BODY
    cors_origins: Tuple[str, ...] = ()
    log_file: Optional[str] = None
    output: Optional[str] = None
    log_level: str = "INFO"
    access_log: bool = True
    service_name: str = "ML service"
    service_version: str = "1.0"
    server_version: str = ""
    switch_interval_s: float = 0.0005
    workers: int = 1
    loop: str = "auto"
    inline_run_ms: float = DEFAULT_INLINE_MS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mlctl.runtime.server``."""
    p = argparse.ArgumentParser(
        prog="python -m mlctl.runtime.server",
        description="Serve an Azure-style score.py (init()/run()) over HTTP.",
    )
    p.add_argument("--entry-script", help="the scoring script (env AZUREML_ENTRY_SCRIPT, relative to AML_APP_ROOT)")
    p.add_argument("--model-dir", help="the model directory, exported as AZUREML_MODEL_DIR (env AZUREML_MODEL_DIR)")
    p.add_argument("--app-root", help="directory the entry script is relative to (env AML_APP_ROOT; default cwd)")
    p.add_argument("--source-dir", help="extra directory put on sys.path (env AZUREML_SOURCE_DIRECTORY)")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=None, help="TCP port (default 5001; 0 = any free port)")
    where.add_argument("--unix-socket", default=None, help="listen on this unix socket instead of TCP")
    p.add_argument(
        "--also-unix-socket",
        default=None,
        help="also listen on this unix socket, beside the TCP port (its folder's mode keeps other users out)",
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="SO_REUSEPORT: several server processes share one TCP port (the kernel spreads connections)",
    )
    p.add_argument("--max-concurrent", type=int, default=None, help="run() calls at a time (default 1)")
    p.add_argument("--max-queue", type=int, default=None, help="requests waiting for run() before 429 (default 512)")
    p.add_argument(
        "--max-abandoned",
        type=int,
        default=None,
        help="run() calls past their timeout still running (their threads cannot be stopped) past "
        "which GET / answers 503, to be replaced (env MLCTL_MAX_ABANDONED_RUNS; default 8)",
    )
    p.add_argument(
        "--request-timeout-ms",
        type=int,
        default=None,
        help="run() time limit in ms (env SCORING_TIMEOUT_MS; default 3600000)",
    )
    p.add_argument(
        "--inline-run-ms",
        type=float,
        default=None,
        help="run() calls shorter than this many ms (a streak of them) run on the event loop's thread, "
        "without the hop to a worker thread (env MLCTL_INLINE_RUN_MS; default 1; 0 = never)",
    )
    p.add_argument("--max-body-bytes", type=int, default=None, help="largest request body (default 100 MiB)")
    p.add_argument("--cors-origins", default=None, help="comma-separated CORS origins (env AML_CORS_ORIGINS)")
    p.add_argument("--log-file", default=None, help="also append the log to this file")
    p.add_argument(
        "--output",
        default=None,
        metavar="PATH",
        help="send all output (stdout and stderr: the log, request lines, print, tracebacks) to this "
        "file or FIFO instead, from the start; a FIFO needs a reader, and once its reader is gone "
        "the output is dropped (the docker runtime's host reads one per container)",
    )
    p.add_argument("--log-level", default=None, help="log level (env AZUREML_LOG_LEVEL; default INFO)")
    p.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    return p


def _positive(name: str, value: int, minimum: int = 1) -> int:
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _env_int(env: Mapping[str, str], name: str) -> Optional[int]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be an integer, got {raw!r}") from None


LOG_LEVELS = ("CRITICAL", "FATAL", "ERROR", "WARNING", "WARN", "INFO", "DEBUG", "NOTSET")


def _log_level(flag: Optional[str], env: Mapping[str, str]) -> str:
    level = (flag or env.get("AZUREML_LOG_LEVEL") or "INFO").upper()
    if level not in LOG_LEVELS:
        source = "--log-level" if flag else "environment variable AZUREML_LOG_LEVEL"
        raise SettingsError(f"{source} must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level


def _switch_interval(env: Mapping[str, str]) -> float:
    raw = env.get("MLCTL_SWITCH_INTERVAL", "").strip()
    try:
        value = float(raw) if raw else 0.0005
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SettingsError(
            f"environment variable MLCTL_SWITCH_INTERVAL must be a positive number of seconds, got {raw!r}"
        )
    return value


def _inline_ms(flag: Optional[float], env: Mapping[str, str]) -> float:
    raw = env.get("MLCTL_INLINE_RUN_MS", "").strip()
    source = "--inline-run-ms" if flag is not None else "environment variable MLCTL_INLINE_RUN_MS"
    try:
        value = flag if flag is not None else float(raw) if raw else DEFAULT_INLINE_MS
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1000:  # (also refuses nan)
        raise SettingsError(
            f"{source} must be a number of milliseconds from 0 (never inline) to 1000, "
            f"got {flag if flag is not None else raw!r}"
        )
    return value


def worker_count(env: Mapping[str, str]) -> int:
    """Pure: the worker processes asked for by Azure's WORKER_COUNT (unset or empty: 1); SettingsError
    for anything but a whole number 1..MAX_WORKERS."""
    raw = env.get("WORKER_COUNT", "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WORKERS:
        raise SettingsError(
            f"environment variable WORKER_COUNT must be a whole number of worker processes from 1 "
            f"to {MAX_WORKERS}, got {raw!r} (set it in the deployment's environment_variables)"
        )
    return value


def _loop(env: Mapping[str, str]) -> str:
    value = env.get("MLCTL_SERVER_LOOP", "").strip().lower() or "auto"
    if value not in LOOPS:
        raise SettingsError(f"environment variable MLCTL_SERVER_LOOP must be one of {', '.join(LOOPS)}, got {value!r}")
    return value


def parse_settings(argv: Optional[Sequence[str]], env: Mapping[str, str]) -> Settings:
    """Pure: flags first, then the Azure environment variables, then defaults."""
    ns = build_parser().parse_args(argv)
    app_root = os.path.abspath(ns.app_root or env.get("AML_APP_ROOT") or os.getcwd())
    if ns.entry_script:
        entry = os.path.abspath(ns.entry_script)
    elif env.get("AZUREML_ENTRY_SCRIPT"):
        entry = os.path.join(app_root, env["AZUREML_ENTRY_SCRIPT"])
    else:
        entry = os.path.join(app_root, "main.py")
    model_dir = ns.model_dir or env.get("AZUREML_MODEL_DIR") or None
    source_dir = ns.source_dir or env.get("AZUREML_SOURCE_DIRECTORY") or None
    if source_dir:
        source_dir = os.path.join(app_root, source_dir)
    timeout = ns.request_timeout_ms
    if timeout is None:
        timeout = _env_int(env, "SCORING_TIMEOUT_MS") or DEFAULT_TIMEOUT_MS
    cors = ns.cors_origins if ns.cors_origins is not None else env.get("AML_CORS_ORIGINS", "")
    port = ns.port if ns.port is not None else DEFAULT_PORT
    if not 0 <= port <= 65535:
        raise SettingsError(f"--port must be 0..65535, got {port}")
    return Settings(
        entry_script=entry,
        model_dir=os.path.abspath(model_dir) if model_dir else None,
        app_root=app_root,
        source_dir=source_dir,
        host=ns.host or "127.0.0.1",
        port=port,
        unix_socket=ns.unix_socket,
        also_unix_socket=None if ns.unix_socket else ns.also_unix_socket,
        reuse_port=ns.reuse_port,
        max_concurrent=_positive("--max-concurrent", ns.max_concurrent if ns.max_concurrent is not None else 1),
        max_queue=_positive("--max-queue", ns.max_queue if ns.max_queue is not None else DEFAULT_MAX_QUEUE, 0),
        max_abandoned=_positive(
            "--max-abandoned",
            ns.max_abandoned
            if ns.max_abandoned is not None
            else _env_int(env, "MLCTL_MAX_ABANDONED_RUNS") or DEFAULT_MAX_ABANDONED,
        ),
        request_timeout_ms=_positive("--request-timeout-ms", timeout),
        max_body_bytes=_positive(
            "--max-body-bytes", ns.max_body_bytes if ns.max_body_bytes is not None else DEFAULT_MAX_BODY
        ),
        cors_origins=tuple(o.strip() for o in cors.split(",") if o.strip()),
        log_file=ns.log_file,
        output=ns.output,
        log_level=_log_level(ns.log_level, env),
        access_log=not ns.no_access_log,
        service_name=env.get("SERVICE_NAME", "ML service"),
        service_version=env.get("SERVICE_VERSION", "1.0"),
        server_version=env.get("HTTP_X_MS_SERVER_VERSION", ""),
        switch_interval_s=_switch_interval(env),
        workers=worker_count(env),
        loop=_loop(env),
        inline_run_ms=_inline_ms(ns.inline_run_ms, env),
    )
