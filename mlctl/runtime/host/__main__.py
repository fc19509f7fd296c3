"""Entry point: `python -m mlctl.runtime.host --data-dir DIR --endpoint NAME [--port P] [--auth-mode M]
[--listen JSON]`.

Binds the gateway on the listen address (127.0.0.1 unless --listen says otherwise: listen.py; the given
port, else the recorded one if free, else 0), the admin
API on its unix socket (0600), writes DIR/run/NAME.json, and runs until shutdown or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

from mlctl.errors import MlctlError
from mlctl.runtime.server.startup import die_with_parent_pid

from . import secrets
from .admin import make_admin
from .endpoint import Endpoint
from .filelimit import max_connections, raise_file_limit
from .gateway import Gateway
from .launcher import Place
from .listen import ListenSettings, bind_port, url_host
from .logfiles import StdioLog
from .runfiles import TWIN_EXIT, admin_socket_path, host_log, read_run_record, write_run_record
from .sockets import FolderHeld, claim_socket_folder, sweep_run_folder
from .throttle import LogThrottle
from .tls import Tls, TlsError

log = logging.getLogger("mlctl.host")


async def serve(args) -> int:
    data_dir = Path(args.data_dir).resolve()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sweep_run_folder()  # what SIGKILLed hosts left; never fails the start
    try:  # before the port: a twin started at the same moment must not take the port the endpoint had
        sockets = claim_socket_folder(data_dir, args.endpoint)
    except FolderHeld as e:
        log.error(
            "another host of endpoint %r is running (it holds %s); this one exits and mlctl uses that one",
            args.endpoint,
            e.args[0],
        )
        return TWIN_EXIT
    previous = read_run_record(data_dir, args.endpoint) or {}
    listen = args.listen
    tls = None
    if listen.tls:
        try:
            tls = Tls(listen.certificate, listen.key, listen.client_ca)
        except TlsError as e:
            log.error("cannot serve TLS: %s", e)
            sockets.release()
            return 2
    try:
        sock = bind_port(listen.address, args.port, previous.get("port"))
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", url_host(listen.address), args.port, e.strerror)
        sockets.release()
        return 2
    port = sock.getsockname()[1]
    ep = Endpoint(data_dir, args.endpoint, args.auth_mode, Place(data_dir, args.endpoint, sockets.path))
    throttle = LogThrottle()  # a flood (accept() failing for want of descriptors) logs a few lines, not thousands
    logging.getLogger("asyncio").addFilter(throttle)
    loop.set_exception_handler(throttle.handle_loop_error)
    gateway = Gateway(ep, listen, tls)
    connections = max_connections(args.file_limit)
    await gateway.start(sock, connections)
    admin_path = admin_socket_path(data_dir, args.endpoint)
    admin_path.parent.mkdir(parents=True, exist_ok=True)
    admin_path.unlink(missing_ok=True)
    admin = web.AppRunner(make_admin(ep, port, stop, listen, tls), access_log=None, handle_signals=False)
    await admin.setup()
    await web.UnixSite(admin, str(admin_path)).start()
    os.chmod(admin_path, 0o600)
    record = {
        "pid": os.getpid(),
        "port": port,
        "admin_socket": str(admin_path),
        "started": time.time(),
        "auth_mode": args.auth_mode,
        "endpoint": args.endpoint,
        "listen": listen.public(),
        "data_dir": os.path.realpath(data_dir),
    }
    write_run_record(data_dir, args.endpoint, record)
    log.info(
        "endpoint %s listening on %s://%s:%d (admin %s, pid %d, event loop %s, file limit %d, connection limit %d)",
        args.endpoint,
        listen.scheme,
        url_host(listen.address),
        port,
        admin_path,
        os.getpid(),
        type(loop).__module__.split(".")[0],
        args.file_limit,
        connections,
    )
    stdio = StdioLog(host_log(data_dir, args.endpoint))
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 5)
        except asyncio.TimeoutError:
            stdio.check()  # never raises: a failed rotation is tried again at the next check
    log.info("endpoint %s shutting down", args.endpoint)
    await admin.cleanup()
    await gateway.stop()
    await ep.stop_all()
    admin_path.unlink(missing_ok=True)
    sockets.release()
    write_run_record(data_dir, args.endpoint, {**record, "pid": 0, "stopped": time.time()})
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlctl.runtime.host")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--auth-mode", default="key")
    parser.add_argument("--listen", default="{}", help="the listen settings, a JSON object (docs/host.md)")
    args = parser.parse_args(argv)
    die_with_parent_pid()  # started by a Ray actor (mlctl/runtime/ray/ingress.py): gone with it, never orphaned
    os.umask(0o077)
    args.file_limit = raise_file_limit()
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"
    )
    try:
        args.listen = ListenSettings.from_dict(json.loads(args.listen))
    except ValueError as e:  # a ListenError, or not JSON
        log.error("bad --listen settings: %s", e)
        return 2
    try:
        secrets.read_keys(args.data_dir, args.endpoint)
    except (OSError, MlctlError) as e:  # MlctlError: a symbolic link or not a regular file
        log.error("cannot read the endpoint's secrets file: %s (start the host with mlctl, which creates it)", e)
        return 2
    # chosen outside any `except` block: an exception raised while one is handled gets it as __context__
    runner = event_loop_runner(os.environ.get("MLCTL_HOST_LOOP", "auto"))
    return runner(serve(args))


def event_loop_runner(choice: str):
    """uvloop.run when uvloop is installed (MLCTL_HOST_LOOP=auto, the default, or uvloop), else
    asyncio.run (MLCTL_HOST_LOOP=asyncio forces it: the tests run the host both ways)."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            uvloop = None
        if uvloop is not None:
            return uvloop.run
    return asyncio.run


if __name__ == "__main__":
    sys.exit(main())
