"""Process start-up and shutdown: settings, logging, script load and init(), listen, drain on SIGTERM.

Exit codes: 0 after a SIGTERM/SIGINT drain, 1 when the socket cannot be bound or a second
stop signal cuts the drain short, 2 for bad flags, 3 when the script cannot be loaded or its init() fails (before ever reporting ready).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import sys
import traceback
from typing import Iterator, List, Optional, Sequence, Tuple

from aiohttp import web

from mlctl.runtime.server.answers import SERVER_VERSION
from mlctl.runtime.server.logs import RequestLog, configure_logging
from mlctl.runtime.server.settings import Settings, SettingsError, parse_settings

logger = logging.getLogger("azmlinfsrv")

EXIT_INIT_FAILED = 3
EXIT_CANNOT_LISTEN = 1
EXIT_FORCED = 1


class ListenError(Exception):
    """The server cannot bind its socket (address in use, bad path, permission)."""
TREE_LINES = 200
SHIMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shims")


def walk_tree(path: str, depth: int = 0) -> Iterator[str]:
    """Lines of an indented tree of path (the model directory shown when init() fails)."""
    name = os.path.basename(os.path.normpath(path))
    if os.path.isdir(path):
        yield f"{'    ' * depth}{name}{os.sep}"
        try:
            children = sorted(os.listdir(path))
        except OSError as exc:
            yield f"{'    ' * (depth + 1)}<unreadable: {exc.strerror}>"
            return
        for child in children:
            yield from walk_tree(os.path.join(path, child), depth + 1)
    else:
        yield f"{'    ' * depth}{name}"


def _log_model_dir(model_dir: Optional[str]) -> None:
    if not model_dir:
        logger.info("No model directory was given (--model-dir / AZUREML_MODEL_DIR).")
        return
    if not os.path.exists(model_dir):
        logger.info("Model directory %s does not exist.", model_dir)
        return
    logger.info("Model Directory Contents:")
    tree = walk_tree(model_dir)
    for line in itertools.islice(tree, TREE_LINES):
        logger.info(line)
    if next(tree, None) is not None:
        logger.info("Output Truncated. First %d lines shown.", TREE_LINES)


def _prepare_imports(settings: Settings) -> None:
    """sys.path and environment for the script: its folder, app root, source dir, azureml shims."""
    if settings.model_dir:
        os.environ["AZUREML_MODEL_DIR"] = settings.model_dir
    os.environ.setdefault("AZUREML_ENTRY_SCRIPT", settings.entry_script)
    for extra in (settings.source_dir, settings.app_root, os.path.dirname(settings.entry_script)):
        if extra and extra not in sys.path:
            sys.path.insert(0, extra)
    # Only stand in for azureml packages that are not installed: appended last, they lose to real ones.
    if SHIMS not in sys.path:
        sys.path.append(SHIMS)


def _load(settings: Settings):  # type: ignore[no-untyped-def]
    """Import the script and run init(); exits with code 3 on any failure."""
    from mlctl.runtime.server.script import ScriptError, UserScript

    try:
        script = UserScript(settings.entry_script)
    except ScriptError as exc:
        logger.error("%s", exc)
        _log_model_dir(settings.model_dir)
        sys.exit(EXIT_INIT_FAILED)
    except BaseException:
        logger.error("Failed to import user script %s because it raised an unhandled exception:\n%s",
                     settings.entry_script, traceback.format_exc())
        _log_model_dir(settings.model_dir)
        sys.exit(EXIT_INIT_FAILED)
    logger.info("Invoking user's init function")
    try:
        script.init()
    except BaseException:
        logger.error("User's init function failed")
        logger.error("Encountered Exception %s", traceback.format_exc())
        _log_model_dir(settings.model_dir)
        sys.exit(EXIT_INIT_FAILED)
    logger.info("Users's init has completed successfully")
    return script


def _install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def _listen(runner: web.AppRunner, settings: Settings) -> Tuple[web.BaseSite, str]:
    """Bind the TCP port or the unix socket; returns the site and where it listens."""
    if settings.unix_socket:
        path = settings.unix_socket
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        site: web.BaseSite = web.UnixSite(runner, path)
        await site.start()
        return site, f"unix:{path}"
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True,
                       reuse_port=settings.reuse_port or None)
    await site.start()
    server = getattr(site, "_server", None)
    sock: socket.socket = server.sockets[0]  # type: ignore[union-attr]
    host, port = sock.getsockname()[:2]
    return site, (f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}")


async def _serve(settings: Settings, script, log: RequestLog) -> None:  # type: ignore[no-untyped-def]
    from mlctl.runtime.server.app import create_app
    from mlctl.runtime.server.scoring import Scorer
    from mlctl.runtime.server.swagger import SwaggerDocs

    loop = asyncio.get_running_loop()
    scorer = Scorer(settings, script, log if settings.access_log else None,
                    os.environ.get("HTTP_X_MS_SERVER_VERSION") or SERVER_VERSION)
    swagger = SwaggerDocs(script.user_run, [os.path.dirname(settings.entry_script), settings.app_root],
                          settings.service_name, settings.service_version)
    app = create_app(scorer, swagger)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site, where = await _listen(runner, settings)
    except OSError as exc:
        await runner.cleanup()
        target = f"unix:{settings.unix_socket}" if settings.unix_socket else f"{settings.host}:{settings.port}"
        raise ListenError(f"cannot listen on {target}: {exc.strerror or exc}") from None
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():  # a second SIGTERM/SIGINT: do not wait for the drain
            logger.warning("Second stop signal: exiting without waiting for %d in-flight request(s)",
                           scorer.inflight)
            log.flush()
            logging.shutdown()
            os._exit(EXIT_FORCED)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    logger.info("Scoring timeout is set to %d ms; max concurrent run() calls %d, queue %d",
                settings.request_timeout_ms, settings.max_concurrent, settings.max_queue)
    logger.info("listening on %s", where)
    sys.stdout.flush()
    await stop.wait()
    logger.info("Shutting down: no new connections; draining %d in-flight request(s)", scorer.inflight)
    await site.stop()
    drain_s = settings.request_timeout_ms / 1000.0 + 5.0
    waited = 0.0
    while scorer.inflight and waited < drain_s:
        await asyncio.sleep(0.01)
        waited += 0.01
    await runner.cleanup()
    if settings.unix_socket and os.path.exists(settings.unix_socket):
        os.unlink(settings.unix_socket)
    logger.info("Stopped.")
    log.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the server until SIGTERM; returns the exit code."""
    try:
        settings = parse_settings(argv, os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    streams: List = configure_logging(settings.log_level, settings.log_file)
    log = RequestLog(streams)
    fast = _install_uvloop()
    # run() on a worker thread and the event loop share the GIL: hand it over sooner than the
    # default 5 ms so a waiting run() or a waiting response does not stall (see bench/README.md).
    sys.setswitchinterval(settings.switch_interval_s)
    logger.info("mlctl scoring server %s (Python %s, aiohttp, uvloop %s) entry script %s, model dir %s",
                SERVER_VERSION, sys.version.split()[0], "on" if fast else "off",
                settings.entry_script, settings.model_dir)
    _prepare_imports(settings)
    script = _load(settings)
    try:
        asyncio.run(_serve(settings, script, log))
    except ListenError as exc:
        logger.error("%s", exc)
        return EXIT_CANNOT_LISTEN
    return 0
