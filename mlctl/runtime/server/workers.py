"""The worker pool: runs run() on threads, off the event loop, with a bounded queue and a timeout.

At most ``size`` calls run at a time; up to ``max_queue`` more wait (FIFO). The hop is one
SimpleQueue put and one ``call_soon_threadsafe`` back. A call that outlives the timeout is
answered as timed out and abandoned: a fresh thread takes its place at once so the pool
keeps its capacity, and the old thread is asked to stop by an asynchronous
Interrupted exception (``PyThreadState_SetAsyncExc``), which interrupts Python code at its next
bytecode (a blocking C call such as ``time.sleep`` finishes first); it then exits.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import queue
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

_STOP = None
logger = logging.getLogger("azmlinfsrv")


class QueueFull(Exception):
    """Every worker is busy and the wait queue is at its bound."""


class CallTimeout(Exception):
    """run() did not finish within the timeout."""

    def __init__(self, timeout_ms: int, elapsed_ms: float) -> None:
        super().__init__(f"Scoring timeout after {timeout_ms} ms")
        self.timeout_ms = timeout_ms
        self.elapsed_ms = elapsed_ms


def _timed_out(value: Any) -> bool:
    """Did the call end because of our interrupt (possibly wrapped by the caller)?"""
    return isinstance(value, Interrupted) or isinstance(getattr(value, "__cause__", None), Interrupted)


class Interrupted(BaseException):
    """Raised inside an abandoned run() to stop it (BaseException: ``except Exception`` in the
    script does not swallow it)."""


class _Job:
    __slots__ = ("fn", "args", "future", "started", "finished", "abandoned", "elapsed_ms", "thread")

    def __init__(self, fn: Callable[..., Any], args: tuple, future: "asyncio.Future[Any]") -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.started = 0.0
        self.finished = False
        self.abandoned = False
        self.elapsed_ms = 0.0
        self.thread = 0


def _interrupt(thread_id: int) -> None:
    """Raise Interrupted asynchronously in another thread (CPython only; a no-op elsewhere)."""
    try:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(Interrupted))
    except (AttributeError, OSError):  # pragma: no cover - not CPython
        pass


def _resolve(job: _Job, ok: bool, value: Any) -> None:
    fut = job.future
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class WorkerPool:
    """Threads that run blocking calls for the event loop (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, max_queue: int, timeout_ms: int) -> None:
        self.loop = loop
        self.size = size
        self.limit = size + max_queue
        self.timeout_ms = timeout_ms
        self.pending = 0  # submitted and not answered (running + waiting)
        self._jobs: "queue.SimpleQueue[Optional[_Job]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: List[Optional[_Job]] = []
        self._threads: List[threading.Thread] = []
        self._watchdog: Optional[asyncio.TimerHandle] = None
        self._serial = 0
        for slot in range(size):
            self._running.append(None)
            self._start_thread(slot)
        self._tick = min(max(timeout_ms / 20000.0, 0.005), 0.25)
        self._watchdog = loop.call_later(self._tick, self._watch)

    def _start_thread(self, slot: int) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        self._serial += 1
        t = threading.Thread(target=self._work, args=(slot,), name=f"scoring-worker-{self._serial}", daemon=True)
        self._threads.append(t)
        t.start()

    def _work(self, slot: int) -> None:
        try:
            self._serve_jobs(slot)
        except Interrupted:  # the interrupt of an abandoned call landed outside run(): just exit
            pass

    def _serve_jobs(self, slot: int) -> None:
        jobs, lock, call_back, running = self._jobs, self._lock, self.loop.call_soon_threadsafe, self._running
        perf = time.perf_counter
        me = threading.get_ident()
        while True:
            job = jobs.get()
            if job is _STOP:
                return
            job.thread = me
            running[slot] = job
            job.started = start = perf()
            try:
                value, ok = job.fn(*job.args), True
            except BaseException as exc:  # run() may raise anything; the server survives it
                value, ok = exc, False
            job.elapsed_ms = (perf() - start) * 1000.0
            with lock:
                job.finished = True
                abandoned = job.abandoned
                if not abandoned:
                    running[slot] = None
            if abandoned:  # a fresh thread already took this slot's place
                logger.warning("An abandoned run() call ended after %.0f ms (%s); its worker thread exits",
                               job.elapsed_ms, "interrupted" if _timed_out(value) else "finished")
                return
            try:
                call_back(_resolve, job, ok, value)
            except RuntimeError:  # loop closed during shutdown
                return

    async def call(self, fn: Callable[..., Any], *args: Any) -> Tuple[Any, float]:
        """Run fn(*args) on a worker and return (its value, ms it took).

        Raises what fn raised, QueueFull when over the bound, CallTimeout when too slow."""
        if self.pending >= self.limit:
            raise QueueFull()
        self.pending += 1
        fut = self.loop.create_future()
        job = _Job(fn, args, fut)
        self._jobs.put(job)
        try:
            return await fut, job.elapsed_ms
        finally:
            self.pending -= 1

    def _watch(self) -> None:
        now = time.perf_counter()
        limit = self.timeout_ms / 1000.0
        for slot, job in enumerate(self._running):
            if job is None or job.started == 0.0 or now - job.started < limit:
                continue
            with self._lock:
                if job.finished or job.abandoned:
                    continue
                job.abandoned = True
                self._running[slot] = None
            if not job.future.done():
                job.future.set_exception(CallTimeout(self.timeout_ms, (now - job.started) * 1000.0))
            self._start_thread(slot)  # a fresh thread takes the abandoned one's place
            _interrupt(job.thread)
        self._watchdog = self.loop.call_later(self._tick, self._watch)

    def close(self) -> None:
        """Stop the watchdog and let idle threads exit (abandoned ones finish on their own)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for _ in range(len(self._running)):
            self._jobs.put(_STOP)
