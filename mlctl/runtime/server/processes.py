"""The parent of WORKER_COUNT worker processes: owns the listening socket, starts, restarts and drains them.

As gunicorn does for the Azure server: the parent binds the socket (TCP port or unix socket) and
forks N workers; each loads the script, runs init() and reports it on its control socket (a
socketpair). The parent calls listen() only once every first-generation worker has done init(), so
nothing answers (not even GET /) before the instance is ready, then tells each worker to serve
("g"); the workers accept on the one socket. A worker that dies is restarted with a backoff (0.1 s,
doubling to 10 s; back to 0.1 s once the one that died had served 10 s) and the restart is logged; a replacement
serves as soon as its own init() is done. SIGTERM/SIGINT: the parent closes its copy of the socket
and tells every worker to drain ("d"; the same drain as one process, so a worker that got the
signal too, through its process group, drains once), waits for all of them, exit 0. A second
signal: workers are told to stop at once ("k"), exit 1. A worker whose parent dies sees its control
socket close and drains. One pid (the parent's) stands for the instance.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from mlctl.serversettings import Settings

logger = logging.getLogger("azmlinfsrv")

BACKLOG = 128
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 10.0
STEADY_S = 10.0  # a worker that served this long resets the backoff
GO, DRAIN, KILL, INITIALIZED = b"g", b"d", b"k", b"i"

# serve_worker(settings, listener, control, slot) -> exit code; runs in the forked child
WorkerMain = Callable[[Settings, socket.socket, socket.socket, int], int]


class ListenError(Exception):
    """The server cannot bind its socket (address in use, bad path, permission)."""

    @classmethod
    def of(cls, settings: Settings, exc: OSError) -> "ListenError":
        target = f"unix:{settings.unix_socket}" if settings.unix_socket else f"{settings.host}:{settings.port}"
        return cls(f"cannot listen on {target}: {exc.strerror or exc}")


def bind(settings: Settings) -> Tuple[socket.socket, str]:
    """A bound, not yet listening socket (connections are refused until listen()) and where it is."""
    try:
        if settings.unix_socket:
            path = settings.unix_socket
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if os.path.exists(path):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            return sock, f"unix:{path}"
        family, kind, proto, _, addr = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if settings.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
    except OSError as exc:
        raise ListenError.of(settings, exc) from None
    host, port = sock.getsockname()[:2]
    return sock, (f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}")


@dataclass
class Worker:
    """One worker slot: its current process, control socket and restart bookkeeping."""

    slot: int
    pid: int = 0
    control: Optional[socket.socket] = None
    started: float = 0.0
    serving: bool = False
    ready_at: Optional[float] = None  # when its init() was done
    failures: int = 0
    restart_at: Optional[float] = None
    codes: List[int] = field(default_factory=list)


def _exit_code(status: int) -> int:
    """The exit code of a waited-for process (128 + N for a death by signal N, as a shell says)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _send(worker: Worker, what: bytes) -> None:
    if worker.control is not None:
        try:
            worker.control.send(what)
        except OSError:  # it is exiting; its death is reaped anyway
            pass


class Parent:
    """The supervising process (see the module docstring)."""

    def __init__(self, settings: Settings, listener: socket.socket, where: str, worker_main: WorkerMain) -> None:
        self.settings, self.listener, self.where, self.worker_main = settings, listener, where, worker_main
        self.workers = [Worker(slot) for slot in range(1, settings.workers + 1)]
        self.listening = False
        self.stopping = False
        self.forced = False
        self.signals: List[int] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # ---- processes ---------------------------------------------------------------------------
    def _spawn(self, worker: Worker) -> None:
        ours, theirs = socket.socketpair()
        sys.stdout.flush()
        for handler in logging.getLogger().handlers:
            handler.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the parent's code
            ours.close()
            code = 1
            try:
                self._forget_in_child()
                code = self.worker_main(self.settings, self.listener, theirs, worker.slot)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("worker %d failed", worker.slot)
            finally:
                from mlctl.runtime.server.startup import exit_now

                exit_now(code)
        theirs.close()
        worker.pid, worker.control, worker.started, worker.serving = pid, ours, time.monotonic(), False
        worker.ready_at = None
        worker.restart_at = None

    def _forget_in_child(self) -> None:
        """In a fresh worker: default signal handling, none of the parent's pipes and sockets."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.close(self._wake_r)
        os.close(self._wake_w)
        for other in self.workers:
            if other.control is not None:
                other.control.close()

    def _on_signal(self, sig: int, frame) -> None:  # type: ignore[no-untyped-def]
        self.signals.append(sig)

    # ---- events ------------------------------------------------------------------------------
    def _on_message(self, worker: Worker) -> None:
        try:
            data = worker.control.recv(64) if worker.control is not None else b""
        except OSError:
            data = b""
        if not data:  # it is gone; reaped on SIGCHLD
            if worker.control is not None:
                worker.control.close()
            worker.control = None
            return
        if INITIALIZED in data and not self.stopping:
            worker.serving, worker.ready_at = True, time.monotonic()
            if self.listening:  # a replacement: the socket already listens
                _send(worker, GO)
                logger.info("worker %d (pid %d) restarted and serving", worker.slot, worker.pid)
            elif all(w.serving for w in self.workers):
                self.listener.listen(BACKLOG)
                self.listening = True
                for w in self.workers:
                    _send(w, GO)
                logger.info("listening on %s (%d worker processes)", self.where, len(self.workers))
                sys.stdout.flush()

    def _reap(self) -> Optional[int]:
        """Collect dead workers; schedules restarts. Returns an exit code when start-up failed."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            worker = next((w for w in self.workers if w.pid == pid), None)
            if worker is None:
                continue
            code = _exit_code(status)
            worker.pid = 0
            if worker.serving or not self.stopping:  # (one still in init() when told to stop is killed: not a failure)
                worker.codes.append(code)
            if worker.control is not None:
                worker.control.close()
                worker.control = None
            if self.stopping:
                continue
            if not self.listening:
                logger.error(
                    "worker %d exited with code %d before it was ready; stopping the others", worker.slot, code
                )
                return code if code in (1, 2, 3) else 1
            lived = time.monotonic() - worker.started
            served = time.monotonic() - worker.ready_at if worker.ready_at is not None else 0.0
            worker.failures = 1 if served >= STEADY_S else worker.failures + 1
            delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (worker.failures - 1))
            worker.restart_at = time.monotonic() + delay
            logger.error(
                "worker %d (pid %d) exited with code %d after %.1f s; restarting it in %.1f s",
                worker.slot,
                pid,
                code,
                lived,
                delay,
            )

    def _stop(self, force: bool) -> None:
        if force:
            self.forced = True
            logger.warning(
                "Second stop signal: stopping %d worker(s) without waiting for their in-flight requests",
                sum(1 for w in self.workers if w.pid),
            )
            for w in self.workers:
                _send(w, KILL)
            return
        self.stopping = True
        logger.info("Shutting down: no new connections; draining %d worker(s)", sum(1 for w in self.workers if w.pid))
        self.listener.close()
        for w in self.workers:
            w.restart_at = None
            if w.pid and w.serving:
                _send(w, DRAIN)
            elif w.pid:  # still importing the script or in init(): nothing to drain
                os.kill(w.pid, signal.SIGTERM)

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        for w in self.workers:
            self._spawn(w)
        failed: Optional[int] = None
        while not (self.stopping and not any(w.pid for w in self.workers)):
            now = time.monotonic()
            due = [w.restart_at for w in self.workers if w.restart_at is not None]
            timeout = max(0.0, min(due) - now) if due else None
            controls: Dict[int, Worker] = {w.control.fileno(): w for w in self.workers if w.control is not None}
            try:
                ready, _, _ = select.select([self._wake_r, *controls], [], [], timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries select
                ready = []
            if self._wake_r in ready:
                try:
                    os.read(self._wake_r, 512)
                except BlockingIOError:
                    pass
            signals, self.signals = self.signals, []
            for sig in signals:
                if sig == signal.SIGCHLD:
                    continue
                if self.stopping and not self.forced:
                    self._stop(force=True)
                elif not self.stopping:
                    self._stop(force=False)
            for fd in ready:
                if fd in controls:
                    self._on_message(controls[fd])
            code = self._reap()
            if code is not None and failed is None:
                failed = code
                self._stop(force=False)
            for w in self.workers:
                if w.restart_at is not None and w.restart_at <= time.monotonic() and not self.stopping:
                    self._spawn(w)
        if self.settings.unix_socket and os.path.exists(self.settings.unix_socket):
            os.unlink(self.settings.unix_socket)
        self.listener.close()
        if failed is not None:
            return failed
        if self.forced or any(w.codes and w.codes[-1] != 0 for w in self.workers):
            return 1
        logger.info("Stopped.")
        return 0


def run_workers(settings: Settings, worker_main: WorkerMain) -> int:
    """Bind, fork settings.workers workers running worker_main, supervise them until stopped; the exit code."""
    try:
        listener, where = bind(settings)
    except ListenError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("starting %d worker processes (WORKER_COUNT)", settings.workers)
    return Parent(settings, listener, where, worker_main).run()
