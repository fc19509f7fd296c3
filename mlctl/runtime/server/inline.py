"""run() on the event loop's own thread while it is known to be short: the policy that decides, and the
caller that keeps the scoring timeout there.

Why: handing a call to a worker thread and back costs a lock wake-up, a GIL hand-off and an
eventfd/epoll round per request; for a run() of 60 µs that is as much as the rest of the request path
(bench/README.md, issue 17). A call shorter than `threshold_ms` (default 1 ms, ``--inline-run-ms`` /
``MLCTL_INLINE_RUN_MS``; 0 = always on worker threads) holds the loop about as long as a worker thread
holds the GIL between two turns of the loop (the server's switch interval is 0.5 ms).

The policy: a server starts on worker threads; after `needed` calls in a row each shorter than the
threshold, calls run inline. A call's duration here is the time it held its thread: its wall time less
the time the thread waited for a CPU (mlctl.runtime.server.runqueue), so that on a busy machine the
kernel's preemption does not make a short call look long; a call that sleeps or blocks counts in full.
Reading that wait costs a read of /proc (2-10 µs, as much as a sixth of a trivial request's CPU), so an inline
call reads it only while it is *measuring*: for MEASURED calls after an inline call that took the threshold or
more without a reading. Such an unmeasured call counts only when even preemption could not explain it (at least
BLOCKING times the threshold, at its wall time); a slower-than-threshold call of a script whose calls are short
is judged, from the next call on, as before. So a script whose calls are all short reads no wait at all.
An inline call at or over the threshold is let pass once in a while (a page fault, a garbage
collection; preemption the kernel does not see, as a virtual machine's host taking its CPU, which comes in
bursts of a few calls), but one more than SLOW_ALLOWED within WINDOW calls, or one over BLOCKING times the
threshold, sends calls back to the threads and doubles `needed` (up to
MAX_NEEDED; back to FIRST_NEEDED when the last switch was long ago, REMEMBER times `needed` inline
calls), so a script whose calls are often or very slow settles on threads, and one that had a bad
moment comes back. Calls on worker threads only build the streak (WorkerPool.call); inline calls alone
send calls back. A call runs inline only when no call is on a worker thread (the pool's ``pending`` is
0); once calls may run inline but some are still on threads, new calls wait for them (WorkerPool.run).

Where an inline call differs from one on a worker thread, precisely:
- while it runs nothing else on this process answers: GET / probes and other requests wait for it (as
  long as the script stays fast, at most about the threshold; with WORKER_COUNT >= 2 the other workers
  answer meanwhile);
- the scoring timeout: a watchdog thread raises Interrupted into the loop thread at the timeout
  (`LoopCaller`); Python code stops there and the request is answered 500 ``Scoring timeout`` as today,
  but a blocking C call (``time.sleep``, a long numpy operation) finishes first, so that answer and the
  probes are late by as much as the call overruns; a C call that never returns leaves the process
  unresponsive until the host's liveness probe replaces it (as gunicorn's worker timeout does for the
  Azure server's sync worker). No thread is abandoned: the call ends before anything goes on;
- 429 and the queue are unchanged: the loop reads no new request while an inline call runs.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from mlctl.runtime.server.runqueue import RunQueue, held_ms
from mlctl.runtime.server.timeouts import CallTimeout, Interrupted, cancel_interrupt, interrupt

logger = logging.getLogger("azmlinfsrv")

FIRST_NEEDED = 8  # fast calls in a row on threads before calls go inline
MAX_NEEDED = 1024  # the most a script that was sometimes slow must show again
WINDOW = 64  # more than SLOW_ALLOWED slow inline calls within this many calls send calls back to the threads
SLOW_ALLOWED = 3
BLOCKING = 10  # so does one inline call this many times the threshold
REMEMBER = 16  # a switch back after more than REMEMBER * needed inline calls starts over at FIRST_NEEDED
MEASURED = WINDOW  # inline calls that read the run-queue wait after one that was slow without a reading


@dataclass
class InlinePolicy:
    """Whether calls run inline, from the durations of the calls before (see the module docstring).
    `record` is pure bookkeeping on this value; `LoopCaller.call` and the worker pool feed it."""

    threshold_ms: float
    needed: int = FIRST_NEEDED
    streak: int = 0
    runs_inline: bool = False
    slow: Tuple[int, ...] = ()  # serials of the slow inline calls let pass within the last WINDOW calls
    last_switch: int = 0  # serial of the inline call that last sent calls back to the threads

    def record(self, ms: float, serial: int = 0) -> None:
        """Call number `serial` (inline calls are numbered by their LoopCaller) took `ms`."""
        if ms < self.threshold_ms:
            if not self.runs_inline:
                self.streak += 1
                if self.streak >= self.needed:
                    self.runs_inline = True
            return
        self.streak = 0
        if not self.runs_inline:
            return
        if ms < BLOCKING * self.threshold_ms:
            recent = tuple(n for n in self.slow if serial - n < WINDOW)
            if len(recent) < SLOW_ALLOWED:  # once in a while (a page fault, a stalled machine): let it pass
                self.slow = recent + (serial,)
                return
        self.runs_inline = False
        self.slow = ()
        recent = serial - self.last_switch <= REMEMBER * self.needed
        self.needed = min(self.needed * 2, MAX_NEEDED) if recent else FIRST_NEEDED
        self.last_switch = serial


class LoopCaller:
    """Calls functions on the loop's thread (the thread that creates it) with the scoring timeout kept
    by a watchdog thread, started on the first call."""

    def __init__(self, timeout_ms: int, threshold_ms: float) -> None:
        self.policy = InlinePolicy(threshold_ms)
        self.timeout_ms = timeout_ms
        self._thread_id = threading.get_ident()
        self.runqueue = RunQueue()  # this (the loop's) thread's wait for a CPU
        self._lock = threading.Lock()  # between the watchdog's interrupt and the end of the call it targets
        self._serial = 0
        self._current = 0  # serial of the inline call running (0: none)
        self._started = 0.0
        self._fired = 0  # serial of the call the watchdog interrupted
        self._closed = threading.Event()
        self._watchdog: Optional[threading.Thread] = None
        self._tick = min(max(timeout_ms / 20000.0, 0.005), 0.25)
        self._measuring = 0  # calls left that read the run-queue wait (the module docstring)

    def call(self, fn: Callable[..., Any], *args: Any) -> Tuple[Any, float]:
        """fn(*args) here and now: (its value, ms it took); raises what fn raised, or CallTimeout when
        the watchdog interrupted it (or it returned past the timeout after a C call held it)."""
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="scoring-inline-watchdog", daemon=True)
            self._watchdog.start()
        self._serial += 1
        serial = self._serial
        measuring = self._measuring > 0
        if measuring:
            self._measuring -= 1
            waited = self.runqueue.waited_ms()
        start = time.perf_counter()
        ok, value = False, None
        try:
            try:
                self._started = start
                self._current = serial
                value, ok = fn(*args), True
            except BaseException as exc:  # run() may raise anything, our Interrupted included
                value = exc
        except Interrupted as exc:  # landed in the handler above
            value = exc
        try:  # the call is over: no interrupt aimed at it may land after this
            with self._lock:
                self._current = 0
                fired = self._fired == serial
            if fired:
                cancel_interrupt(self._thread_id)  # not raised yet: taken back
        except Interrupted:  # raised here instead (the watchdog fires once per call)
            self._current, fired = 0, True
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        policy = self.policy
        if elapsed_ms >= policy.threshold_ms:  # (a short call changes nothing while calls run inline)
            if measuring:
                held = held_ms(elapsed_ms, self.runqueue.waited_ms() - waited)
            else:  # no reading: judge the next calls by their held time; this one only past what preemption explains
                self._measuring = MEASURED
                held = elapsed_ms if elapsed_ms >= BLOCKING * policy.threshold_ms else 0.0
            if held >= policy.threshold_ms:
                policy.record(held, serial)
        if fired:
            raise CallTimeout(self.timeout_ms, elapsed_ms, abandoned=False)
        if not ok:
            raise value  # type: ignore[misc]
        return value, elapsed_ms

    @property
    def measuring(self) -> int:
        """How many more inline calls read their thread's run-queue wait (0: none; the module docstring)."""
        return self._measuring

    def _watch(self) -> None:
        limit = self.timeout_ms / 1000.0
        while not self._closed.wait(self._tick):
            with self._lock:
                serial = self._current
                if not serial or self._fired == serial or time.perf_counter() - self._started < limit:
                    continue
                self._fired = serial
                interrupt(self._thread_id)
            logger.warning("run() on the loop thread passed the scoring timeout of %s ms: interrupted", self.timeout_ms)

    def close(self) -> None:
        """Stop the watchdog (and free the run-queue file: call it on the loop's thread)."""
        self._closed.set()
        self.runqueue.close()
