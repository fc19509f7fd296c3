"""The worker pool on its own (real threads, in-process): no call lost, stuck or run twice when calls
race the workers going idle, `size` calls really run at once, and every worker exits on close."""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from pathlib import Path

import pytest

from mlctl.runtime.server import workers
from mlctl.runtime.server.workers import CallTimeout, WorkerPool

STUCK_S = 30  # a lost wake-up leaves a call waiting for ever: the test fails when this runs out


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scoring-worker-")]


def _run(size: int, drive, timeout_ms: int = 60_000) -> object:
    """asyncio.run(drive(pool)) with a fresh pool of `size` workers; afterwards every worker has exited."""

    async def main():
        pool = WorkerPool(asyncio.get_running_loop(), size=size, max_queue=10_000, timeout_ms=timeout_ms)
        try:
            return await asyncio.wait_for(drive(pool), STUCK_S)
        finally:
            pool.close()

    result = asyncio.run(main())
    deadline = time.monotonic() + 20
    while _pool_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _pool_threads() == []  # close() reached every worker, idle or busy
    return result


@pytest.fixture
def tiny_switch_interval():
    """The GIL changes hands every microsecond: the loop and the workers interleave at every step."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_calls_one_after_another_never_wait_for_a_worker_that_went_idle(tiny_switch_interval):
    async def drive(pool):
        return [(await pool.call(lambda i=i: i))[0] for i in range(5000)]

    assert _run(1, drive) == list(range(5000))


def test_a_burst_runs_size_calls_at_once():
    size = 8
    barrier = threading.Barrier(size, timeout=STUCK_S)  # breaks unless all 8 calls are inside run() together

    async def drive(pool):
        return await asyncio.gather(*(pool.call(barrier.wait) for _ in range(size)))

    assert sorted(r[0] for r in _run(size, drive)) == list(range(size))


def test_every_call_is_answered_once_under_racing_hand_overs(tiny_switch_interval):
    ran: list[int] = []

    def work(i: int) -> int:
        if i % 3:
            time.sleep(random.random() / 2000)  # some calls sleep (GIL released), others return at once
        ran.append(i)
        return i * 2

    async def drive(pool):
        async def client(k: int) -> list[int]:
            out = []
            for i in range(k * 40, k * 40 + 40):
                if i % 7 == 0:
                    await asyncio.sleep(0)  # let workers go idle between some calls
                out.append((await pool.call(work, i))[0])
            return out

        return [x for r in await asyncio.gather(*(client(k) for k in range(50))) for x in r]

    assert _run(4, drive) == [i * 2 for i in range(2000)]
    assert sorted(ran) == list(range(2000))  # each call ran exactly once


def test_a_call_put_while_the_worker_joins_the_idle_stack_is_not_lost():
    """The worker found the line empty and is about to join the idle stack when the call arrives (so the
    hand-over finds nobody to wake): the worker must see the call when it has joined. The interleaving
    is forced by a line tracer on the worker thread (it stops there once, until the call was put)."""
    source = Path(workers.__file__).read_text().splitlines()
    join_line = next(i for i, text in enumerate(source, 1) if text.strip() == "idle.append(worker)")
    at_join, call_put = threading.Event(), threading.Event()

    def tracer(frame, event, arg):
        if frame.f_code.co_name != "_next_job":
            return None

        def step(frame, event, arg):
            if event == "line" and frame.f_lineno == join_line and not at_join.is_set():
                at_join.set()
                call_put.wait(STUCK_S)
            return step

        return step

    async def drive(pool):
        await asyncio.to_thread(at_join.wait, STUCK_S)
        assert at_join.is_set()
        call = asyncio.ensure_future(pool.call(lambda: "answered"))
        await asyncio.sleep(0)  # the call is in the line and the hand-over found the idle stack empty
        call_put.set()
        return (await call)[0]

    threading.settrace(tracer)
    try:
        assert _run(1, drive) == "answered"
    finally:
        threading.settrace(None)


def test_a_timed_out_call_leaves_the_pool_its_full_capacity():
    """A call that outlives the timeout is answered CallTimeout and abandoned; a fresh worker takes its
    slot, so `size` calls still run at once while the abandoned one is still busy (then it exits)."""
    release = threading.Event()
    barrier = threading.Barrier(2, timeout=STUCK_S)

    async def drive(pool):
        with pytest.raises(CallTimeout):
            await pool.call(release.wait, STUCK_S)  # blocks in C: the interrupt waits until it returns
        both = await asyncio.gather(pool.call(barrier.wait), pool.call(barrier.wait))
        sequential = [(await pool.call(lambda i=i: i))[0] for i in range(50)]
        release.set()
        return sorted(r[0] for r in both), sequential

    assert _run(2, drive, timeout_ms=200) == ([0, 1], list(range(50)))  # the abandoned worker exited too
