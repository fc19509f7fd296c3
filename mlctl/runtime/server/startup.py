"""Process start-up and shutdown: settings, logging, script load and init(), listen, drain on SIGTERM.

Exit codes: 0 after a SIGTERM/SIGINT drain, 1 when the socket cannot be bound or a second
stop signal cuts the drain short, 2 for bad flags, 3 when the script cannot be loaded or its init() fails
(before ever reporting ready).
With WORKER_COUNT > 1 this process is the parent of that many workers (mlctl.runtime.server.processes),
each of which runs `serve_worker`.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.abc
import importlib.util
import itertools
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from typing import Iterator, List, Optional, Sequence, Tuple

from aiohttp import web

from mlctl.runtime.server.answers import SERVER_VERSION
from mlctl.runtime.server.app import take_hop_secret
from mlctl.runtime.server.logs import RequestLog, configure_logging
from mlctl.runtime.server.output import redirect
from mlctl.runtime.server.processes import DRAIN, GO, INITIALIZED, KILL, ListenError, run_workers
from mlctl.serversettings import Settings, SettingsError, parse_settings

logger = logging.getLogger("azmlinfsrv")

EXIT_INIT_FAILED = 3
EXIT_CANNOT_LISTEN = 1
EXIT_FORCED = 1
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
    if not any(isinstance(f, HiddenShims) for f in sys.meta_path):
        sys.meta_path.append(HiddenShims())


class HiddenShims(importlib.abc.MetaPathFinder):
    """Finds the azureml stand-ins that an installed azureml package hides. A regular `azureml/__init__.py`
    (azureml-ai-monitoring ships one, as older azureml packages do) ends the namespace, so
    `azureml.contrib.services` is no longer found on sys.path, although Azure's server provides it beside any
    of them. Asked last (after every path finder), so an installed module always wins."""

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith("azureml."):
            return None
        base = os.path.join(SHIMS, *fullname.split("."))
        if os.path.isfile(os.path.join(base, "__init__.py")):
            return importlib.util.spec_from_file_location(
                fullname, os.path.join(base, "__init__.py"), submodule_search_locations=[base]
            )
        if os.path.isfile(base + ".py"):
            return importlib.util.spec_from_file_location(fullname, base + ".py")
        return None


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
        logger.error(
            "Failed to import user script %s because it raised an unhandled exception:\n%s",
            settings.entry_script,
            traceback.format_exc(),
        )
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
    logger.info("User's init has completed successfully")
    return script


def _install_uvloop(mode: str) -> bool:
    """uvloop's policy when installed (mode auto or uvloop; MLCTL_SERVER_LOOP=asyncio keeps asyncio's loop)."""
    if mode == "asyncio":
        return False
    try:
        import uvloop
    except ImportError:
        if mode == "uvloop":
            raise SettingsError("MLCTL_SERVER_LOOP=uvloop but uvloop is not installed") from None
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


# aiohttp >= 3.9 (web.AppKey is new there too) takes shutdown_timeout on the runner, 3.8 on each site
_RUNNER_SHUTDOWN = hasattr(web, "AppKey")


def _site_shutdown() -> dict:
    """The site's shutdown_timeout argument on the aiohttp 3.8 line (Python 3.7 environments), none on 3.9+."""
    return {} if _RUNNER_SHUTDOWN else {"shutdown_timeout": 5.0}


async def _listen(runner: web.AppRunner, settings: Settings) -> Tuple[web.BaseSite, str]:
    """Bind the TCP port or the unix socket; returns the site and where it listens."""
    if settings.unix_socket:
        path = settings.unix_socket
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        site: web.BaseSite = web.UnixSite(runner, path, **_site_shutdown())
        await site.start()
        return site, f"unix:{path}"
    site = web.TCPSite(
        runner,
        settings.host,
        settings.port,
        reuse_address=True,
        reuse_port=settings.reuse_port or None,
        **_site_shutdown(),
    )
    await site.start()
    server = getattr(site, "_server", None)
    sock: socket.socket = server.sockets[0]  # type: ignore[union-attr]
    host, port = sock.getsockname()[:2]
    return site, (f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}")


async def _listen_also(runner: web.AppRunner, settings: Settings) -> Optional[web.BaseSite]:
    """The unix socket beside the TCP port (`--also-unix-socket`), None without one. Its folder must exist: its
    mode, the caller's, is what keeps other users out (the hop secret is asked on it too)."""
    path = settings.also_unix_socket
    if not path:
        return None
    if os.path.exists(path):
        os.unlink(path)
    site = web.UnixSite(runner, path, **_site_shutdown())
    await site.start()
    logger.info("also listening on unix:%s", path)
    return site


async def _serve(
    settings: Settings,
    script,
    log: RequestLog,  # type: ignore[no-untyped-def]
    listener: Optional[socket.socket] = None,
    control: Optional[socket.socket] = None,
    signals: Optional[List[int]] = None,
) -> None:
    """Serve until stopped: on its own socket, or (a worker) on the parent's `listener`, told by `control`;
    `signals` holds the stop signals that arrived before the loop took them over."""
    from mlctl.runtime.server.app import create_app
    from mlctl.runtime.server.scoring import Scorer
    from mlctl.runtime.server.swagger import SwaggerDocs

    loop = asyncio.get_running_loop()
    scorer = Scorer(
        settings,
        script,
        log if settings.access_log else None,
        os.environ.get("HTTP_X_MS_SERVER_VERSION") or SERVER_VERSION,
    )
    swagger = SwaggerDocs(
        script.user_run,
        [os.path.dirname(settings.entry_script), settings.app_root],
        settings.service_name,
        settings.service_version,
    )
    app = create_app(scorer, swagger)
    # aiohttp 3.9 takes shutdown_timeout on the runner; the 3.8 line (Python 3.7 environments) on each site,
    # and passes unknown runner arguments on to every connection's handler, which then fails to start
    shutdown = {"shutdown_timeout": 5.0}
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **(shutdown if _RUNNER_SHUTDOWN else {}))
    await runner.setup()
    try:
        if listener is not None:
            site: web.BaseSite = web.SockSite(runner, listener, **_site_shutdown())
            await site.start()
        else:
            site, where = await _listen(runner, settings)
        also = await _listen_also(runner, settings) if listener is None else None
    except OSError as exc:
        await runner.cleanup()
        raise ListenError.of(settings, exc) from None
    stop = asyncio.Event()

    def force() -> None:
        logger.warning("Second stop signal: exiting without waiting for %d in-flight request(s)", scorer.inflight)
        log.flush()
        logging.shutdown()
        os._exit(EXIT_FORCED)

    early = bool(signals)  # (a signal that came early may be dispatched again by the loop: not a second one)
    seen: List[int] = []

    def on_signal() -> None:
        if seen:  # a second SIGTERM/SIGINT: do not wait for the drain (the parent's "drain" is not a signal)
            force()
        seen.append(1)
        stop.set()

    def on_control() -> None:  # the parent of a worker: drain, stop at once, or gone (EOF: drain)
        try:
            data = control.recv(64)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if KILL in data:
            force()
        if not data:
            loop.remove_reader(control.fileno())  # type: ignore[union-attr]
        if not data or DRAIN in data:  # (still listening after a drain: a "stop at once" may follow)
            stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    if early:  # stopped while starting: drain (nothing is in flight yet)
        stop.set()
    logger.info(
        "Scoring timeout is set to %d ms; max concurrent run() calls %d, queue %d",
        settings.request_timeout_ms,
        settings.max_concurrent,
        settings.max_queue,
    )
    if control is not None:
        control.setblocking(False)
        loop.add_reader(control.fileno(), on_control)
        logger.info("worker serving")
    else:
        logger.info("listening on %s", where)
    sys.stdout.flush()
    await stop.wait()
    logger.info("Shutting down: no new connections; draining %d in-flight request(s)", scorer.inflight)
    await site.stop()
    if also is not None:
        await also.stop()
    drain_s = settings.request_timeout_ms / 1000.0 + 5.0
    waited = 0.0
    while scorer.inflight and waited < drain_s:
        await asyncio.sleep(0.01)
        waited += 0.01
    await runner.cleanup()
    for path in (settings.unix_socket, settings.also_unix_socket):
        if listener is None and path and os.path.exists(path):
            os.unlink(path)
    logger.info("Stopped.")
    log.flush()


def serve_worker(streams: List, settings: Settings, listener: socket.socket, control: socket.socket, slot: int) -> int:
    """A forked worker: load the script and run init(), say so, serve on `listener` once told to (its request
    log on `streams`); the exit code."""
    script = _load(settings)  # (a stop signal meanwhile ends the process, as it does one without workers)
    signals: List[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):  # from now on a stop signal means a drain, once serving
        signal.signal(sig, lambda number, frame: signals.append(number))
    logger.info("worker %d initialized", slot)
    control.sendall(INITIALIZED)
    while not signals:
        word = control.recv(64)
        if not word or DRAIN in word or KILL in word:  # stopped (or the parent died) before serving
            return 0
        if GO in word:
            break
    asyncio.run(_serve(settings, script, RequestLog(streams), listener=listener, control=control, signals=signals))
    return 0


def exit_now(code: int) -> None:
    """Exit with `code` without tearing down every module: with scikit-learn loaded that teardown
    takes about 0.5 s, which a rollout waits for while the old instance stops. atexit handlers
    (the script's, logging's) and buffered output still run, after the non-daemon threads the
    script started have ended (as a normal exit waits for them)."""
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon and t is not threading.main_thread():
            t.join()
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def die_with_parent_pid() -> None:
    """MLCTL_PARENT_PID set (a Ray replica's server, or an in-cluster endpoint host: Ray's worker has gRPC threads,
    so nothing may run between fork and exec there): SIGKILL this process when the thread that started it ends, and
    end now if it has."""
    parent = os.environ.pop("MLCTL_PARENT_PID", "")
    if not parent:
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the replica kills its server itself
        return
    if str(os.getppid()) != parent:
        os._exit(1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the server until SIGTERM; returns the exit code."""
    die_with_parent_pid()
    try:
        settings = parse_settings(argv, os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.output:
        try:
            redirect(settings.output)
        except OSError as exc:
            print(f"error: --output {settings.output}: cannot write to it: {exc.strerror or exc}", file=sys.stderr)
            return 2
    streams: List = configure_logging(settings.log_level, settings.log_file)
    try:
        fast = _install_uvloop(settings.loop)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # run() on a worker thread and the event loop share the GIL: hand it over sooner than the
    # default 5 ms so a waiting run() or a waiting response does not stall (see bench/README.md).
    sys.setswitchinterval(settings.switch_interval_s)
    logger.info(
        "mlctl scoring server %s (Python %s, aiohttp, uvloop %s) entry script %s, model dir %s",
        SERVER_VERSION,
        sys.version.split()[0],
        "on" if fast else "off",
        settings.entry_script,
        settings.model_dir,
    )
    take_hop_secret()  # out of the environment before the script is imported
    _prepare_imports(settings)
    if settings.workers > 1:
        return run_workers(settings, functools.partial(serve_worker, streams))
    script = _load(settings)
    try:
        asyncio.run(_serve(settings, script, RequestLog(streams)))
    except ListenError as exc:
        logger.error("%s", exc)
        return EXIT_CANNOT_LISTEN
    return 0
