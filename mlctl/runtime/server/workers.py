"""The worker pool: runs run() on threads, off the event loop, with a bounded queue and a timeout
(or on the loop's thread while calls are short: mlctl.runtime.server.inline says when and how).

At most ``size`` calls run at a time; up to ``max_queue`` more wait (FIFO). A call joins the waiting
line and the worker that went idle last is woken to take it (a stack of idle workers, each asleep on
its own lock), so under light load one warm thread serves the calls (one SimpleQueue that all
workers wait on wakes them in turn: with 64 workers each call found a cold thread, ~10 % of
throughput at concurrency 1). Under load, a worker that finishes a call takes the next waiting one
before it sleeps, and only one woken worker is on its way at a time (it wakes the next if more calls
wait): waking a worker for every call cost 3.5 thread switches per call at concurrency 8 instead of
0.6, and a third of the throughput. The pool takes no lock of its own on the way: list append/pop
and SimpleQueue calls are atomic, and a worker looks at the line again after it joined the idle
stack (see _next_job). The hop is one put, one lock release and one ``call_soon_threadsafe`` back.

A call that outlives the timeout is answered as timed out and abandoned: a fresh thread takes its
place at once so the pool keeps its capacity, and the old thread is asked to stop by an asynchronous
Interrupted exception (``PyThreadState_SetAsyncExc``), which interrupts Python code at its next
bytecode (a blocking C call such as ``time.sleep`` finishes first); it then exits.

Abandoned calls still running are counted: once ``max_abandoned`` are, no fresh thread replaces the
next one (threads stuck in C would pile up without limit) and the pool says it is `unhealthy`
(the server's GET / answers 503, so that its supervisor replaces the process).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from mlctl.runtime.server.inline import LoopCaller
from mlctl.runtime.server.runqueue import RunQueue, held_ms
from mlctl.runtime.server.timeouts import CallTimeout, Interrupted, interrupt, is_interrupted

__all__ = ["CallTimeout", "QueueFull", "Unhealthy", "WorkerPool"]

_STOP: Any = object()  # in the waiting line: the worker that takes it exits (close)
logger = logging.getLogger("azmlinfsrv")


class QueueFull(Exception):
    """Every worker is busy and the wait queue is at its bound."""


class Unhealthy(Exception):
    """The pool stopped taking calls: too many abandoned ones are still running (see `unhealthy`)."""


class _Job:
    __slots__ = ("fn", "args", "future", "started", "finished", "abandoned", "elapsed_ms", "held_ms", "thread")

    def __init__(self, fn: Callable[..., Any], args: tuple, future: "asyncio.Future[Any]") -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.started = 0.0
        self.finished = False
        self.abandoned = False
        self.elapsed_ms = 0.0
        self.held_ms = 0.0  # elapsed_ms less the worker thread's wait for a CPU (mlctl.runtime.server.runqueue)
        self.thread = 0


class _Worker:
    """One worker thread: `wake` is held while it sleeps on the idle stack; a release wakes it."""

    __slots__ = ("slot", "wake")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.wake = threading.Lock()
        self.wake.acquire()


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

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        size: int,
        max_queue: int,
        timeout_ms: int,
        max_abandoned: int = 8,
        inline_ms: float = 0.0,
    ) -> None:
        self.loop = loop
        self.inline = LoopCaller(timeout_ms, inline_ms)  # made on the loop's thread: calls run() there
        self.max_abandoned = max_abandoned
        self.abandoned = 0  # abandoned calls still running (guarded by _lock)
        self.unhealthy = ""  # why the pool cannot go on (said by GET /), once abandoned calls reached the cap
        self.size = size
        self.limit = size + max_queue
        self.timeout_ms = timeout_ms
        self.pending = 0  # submitted and not answered (running + waiting)
        self.waiting_inline = 0  # calls waiting for the threads' calls to finish so as to run inline
        self._drained = asyncio.Event()  # set while nothing is pending
        self._drained.set()
        self._lock = threading.Lock()  # guards the jobs' finished/abandoned and _running
        self._idle: List[_Worker] = []  # a stack: the worker that went idle last is woken first
        self._waiting: "queue.SimpleQueue[_Job]" = queue.SimpleQueue()  # calls no worker has taken yet
        self._waking = False  # a worker was woken and has not looked at the waiting line yet
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
        t = threading.Thread(
            target=self._work, args=(_Worker(slot),), name=f"scoring-worker-{self._serial}", daemon=True
        )
        self._threads.append(t)
        t.start()

    def _work(self, worker: _Worker) -> None:
        runqueue = RunQueue()  # this thread's own
        try:
            self._serve_jobs(worker, runqueue)
        except Interrupted:  # the interrupt of an abandoned call landed outside run(): just exit
            pass
        finally:
            runqueue.close()

    def _next_job(self, worker: _Worker) -> _Job:
        """The oldest waiting call (or _STOP), sleeping on the idle stack until there is one."""
        waiting, idle = self._waiting, self._idle
        while True:
            if not waiting.empty():
                try:
                    job = waiting.get_nowait()
                except queue.Empty:  # another worker took it
                    continue
                if not self._waking and not waiting.empty():
                    self._wake_one()  # more wait: pass the baton (hand-overs wake one worker at a time)
                return job
            idle.append(worker)
            if not waiting.empty():  # put while we joined: take it ourselves, unless a hand-over woke us
                try:
                    idle.remove(worker)
                    continue
                except ValueError:
                    pass
            worker.wake.acquire()  # released once by whoever popped us from the idle stack
            self._waking = False  # (before looking: what was put meanwhile is ours to see)

    def _serve_jobs(self, worker: _Worker, runqueue: RunQueue) -> None:
        lock, call_back, running = self._lock, self.loop.call_soon_threadsafe, self._running
        perf, waited_ms, loop_waited_ms = time.perf_counter, runqueue.waited_ms, self.inline.runqueue.waited_ms
        me, slot = threading.get_ident(), worker.slot
        while True:
            job = self._next_job(worker)
            if job is _STOP:
                return
            job.thread = me
            running[slot] = job
            waited = waited_ms() + loop_waited_ms()  # (the loop's thread: this one may wait for its GIL)
            job.started = start = perf()
            try:
                value, ok = job.fn(*job.args), True
            except BaseException as exc:  # run() may raise anything; the server survives it
                value, ok = exc, False
            job.elapsed_ms = elapsed = (perf() - start) * 1000.0
            job.held_ms = held_ms(elapsed, waited_ms() + loop_waited_ms() - waited)
            with lock:
                job.finished = True
                abandoned = job.abandoned
                if not abandoned:
                    running[slot] = None
            if abandoned:  # a fresh thread already took this slot's place (unless at the cap)
                with lock:
                    self.abandoned -= 1
                logger.warning(
                    "An abandoned run() call ended after %.0f ms (%s); its worker thread exits",
                    job.elapsed_ms,
                    "interrupted" if is_interrupted(value) else "finished",
                )
                return
            try:
                call_back(_resolve, job, ok, value)
            except RuntimeError:  # loop closed during shutdown
                return

    async def call(self, fn: Callable[..., Any], *args: Any) -> Tuple[Any, float]:
        """Run fn(*args) on a worker and return (its value, ms it took).

        Raises what fn raised, QueueFull when over the bound, CallTimeout when too slow, Unhealthy once
        too many abandoned calls are still running."""
        if self.pending + self.waiting_inline >= self.limit:
            raise QueueFull()
        if self.unhealthy:
            raise Unhealthy(self.unhealthy)
        self.pending += 1
        if self.pending == 1:
            self._drained.clear()
        fut = self.loop.create_future()
        job = _Job(fn, args, fut)
        self._hand_over(job)
        try:
            value = await fut
        finally:
            self.pending -= 1
            if not self.pending:
                self._drained.set()
        policy = self.inline.policy
        if not policy.runs_inline:  # calls on threads only build the streak; inline calls judge going back
            policy.record(job.held_ms)
        return value, job.elapsed_ms

    def takes_inline(self) -> bool:
        """May the next call run on the loop's thread (`self.inline.call`) rather than through `call`?
        While calls are short and none is on a worker thread (mlctl.runtime.server.inline)."""
        return self.inline.policy.runs_inline and not self.pending and not self.unhealthy

    async def run(self, fn: Callable[..., Any], *args: Any) -> Tuple[Any, float]:
        """fn(*args) on the loop's thread while calls are short, else through `call` (same answers and errors).

        Once calls may run inline again but some are still on worker threads, a new call waits for those to
        finish and then runs inline (waiting calls in their order of arrival) rather than queue behind them:
        under steady load something is always pending, and calls would otherwise stay on the threads.
        Waiting calls count toward the queue's bound (QueueFull)."""
        if self.pending and self.inline.policy.runs_inline and not self.unhealthy:
            if self.pending + self.waiting_inline >= self.limit:
                raise QueueFull()
            self.waiting_inline += 1
            try:
                await self._drained.wait()
            finally:
                self.waiting_inline -= 1
        if self.takes_inline():
            return self.inline.call(fn, *args)
        return await self.call(fn, *args)

    def _hand_over(self, job: _Job) -> None:
        """Into the waiting line, then wake a worker for it unless one is already on its way (it takes
        the oldest call and wakes the next worker if more wait)."""
        self._waiting.put(job)
        if not self._waking:
            self._wake_one()

    def _wake_one(self) -> None:
        """Wake the worker that went idle last, if any."""
        try:
            worker = self._idle.pop()
        except IndexError:
            return
        self._waking = True
        worker.wake.release()

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
                self.abandoned += 1
                stuck = self.abandoned
            if not job.future.done():
                job.future.set_exception(CallTimeout(self.timeout_ms, (now - job.started) * 1000.0))
            if stuck < self.max_abandoned:
                self._start_thread(slot)  # a fresh thread takes the abandoned one's place
            elif not self.unhealthy:
                self.unhealthy = (
                    f"{stuck} run() calls past the scoring timeout are still running (the most "
                    f"this server keeps is {self.max_abandoned}): it takes no fresh worker threads "
                    f"and wants replacing"
                )
                logger.error("Unhealthy: %s (GET / answers 503)", self.unhealthy)
            interrupt(job.thread)
        self._watchdog = self.loop.call_later(self._tick, self._watch)

    def close(self) -> None:
        """Stop the watchdogs and let idle threads exit (abandoned ones finish on their own)."""
        self.inline.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for _ in range(len(self._running)):  # behind the calls still waiting
            self._waiting.put(_STOP)
        while self._idle:
            try:
                worker = self._idle.pop()
            except IndexError:
                break
            worker.wake.release()  # it looks at the line and finds its _STOP
