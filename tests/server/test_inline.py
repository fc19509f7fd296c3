"""run() on the event loop's thread while calls are short (mlctl.runtime.server.inline), on real server
processes with uvloop and without: when calls go inline and back, the scoring timeout there, and
answers identical to those of worker threads.

The threshold is 50 ms here (not the default 1 ms) so that a loaded machine cannot make the kitchen
script's calls look slow; the policy is the same."""

from __future__ import annotations

import threading
import time

from servertools import SCRIPTS, wait_for_file
from test_processes import _answers

from mlctl.runtime.server.inline import (
    BLOCKING,
    FIRST_NEEDED,
    MAX_NEEDED,
    MEASURED,
    REMEMBER,
    SLOW_ALLOWED,
    WINDOW,
    InlinePolicy,
    LoopCaller,
)

INLINE = ("--inline-run-ms", "50")
MOST_CALLS = 400  # bound on the calls a test makes waiting for the policy to switch


def _on_loop(server, body=None) -> bool:
    """Did run() answer this call on the event loop's thread?"""
    answer = server.call("POST", "/score", {**(body or {}), "main": 1})
    assert answer.status == 200, answer.body
    return answer.json()["main"]


def _calls_until_inline(server) -> int:
    """Calls made on worker threads before one ran on the loop's thread."""
    for made in range(MOST_CALLS):
        if _on_loop(server):
            return made
    raise AssertionError(f"no call ran inline in {MOST_CALLS} calls")


def _streak(policy: InlinePolicy, calls: int, ms: float = 0.1) -> None:
    for _ in range(calls):
        policy.record(ms)


def test_policy_goes_inline_after_a_streak_of_short_calls():
    policy = InlinePolicy(1.0)
    _streak(policy, FIRST_NEEDED - 1)
    policy.record(1.0)  # at the threshold: slow; the streak starts over
    _streak(policy, FIRST_NEEDED - 1)
    assert not policy.runs_inline
    policy.record(0.99)
    assert policy.runs_inline
    never = InlinePolicy(0.0)
    _streak(never, 100, 0.0)
    assert not never.runs_inline


def test_policy_lets_a_few_slow_calls_pass_but_not_more_within_the_window():
    policy = InlinePolicy(1.0)
    _streak(policy, FIRST_NEEDED)
    burst = [100, 130, 131][:SLOW_ALLOWED]
    for serial in burst:  # preempted calls (a stalled machine), once in a while
        policy.record(5.0, serial=serial)
        assert policy.runs_inline
    policy.record(5.0, serial=100 + WINDOW)  # the first of them is out of the window: let pass again
    assert policy.runs_inline
    policy.record(5.0, serial=101 + WINDOW)  # one more than SLOW_ALLOWED within WINDOW calls
    assert not policy.runs_inline


def test_policy_sends_a_very_slow_call_back_at_once_and_forgets_old_switches():
    policy = InlinePolicy(1.0)
    for switch in range(12):  # one switch after another: the streak needed doubles up to its cap
        _streak(policy, policy.needed)
        assert policy.runs_inline
        policy.record(BLOCKING * 1.0, serial=switch + 1)
        assert not policy.runs_inline
    assert policy.needed == MAX_NEEDED
    _streak(policy, MAX_NEEDED)
    policy.record(BLOCKING * 1.0, serial=12 + REMEMBER * MAX_NEEDED + 1)  # long after the last switch
    assert not policy.runs_inline and policy.needed == FIRST_NEEDED


def test_short_calls_read_no_run_queue_wait_and_a_slow_one_starts_the_measuring():
    """Reading the wait costs a /proc read per call: a script whose calls are short pays none. A call over the
    threshold without a reading counts only at BLOCKING times it; the calls after it are measured."""
    caller = LoopCaller(timeout_ms=60_000, threshold_ms=5.0)
    try:
        caller.policy.runs_inline = True
        for _ in range(200):
            caller.call(lambda: None)
        assert caller.measuring == 0 and caller.policy.runs_inline
        caller.call(time.sleep, 0.012)  # slow, unmeasured, under BLOCKING x 5 ms: not counted ...
        assert caller.measuring == MEASURED and caller.policy.slow == ()
        caller.call(time.sleep, 0.012)  # ... but the next one is measured (a sleep holds its thread in full)
        assert caller.measuring == MEASURED - 1 and len(caller.policy.slow) == 1 and caller.policy.runs_inline
        for _ in range(MEASURED):
            caller.call(lambda: None)
        assert caller.measuring == 0
        caller.call(time.sleep, BLOCKING * 5.0 / 1000)  # unmeasured, but past what preemption explains
        assert not caller.policy.runs_inline
    finally:
        caller.close()


def test_calls_go_inline_after_a_streak_and_a_slow_one_sends_them_back(servers, loop_mode):
    server = servers.start(SCRIPTS / "kitchen.py", *INLINE, env=loop_mode)
    assert _calls_until_inline(server) >= FIRST_NEEDED  # the first calls ran on worker threads
    assert _on_loop(server)
    assert _on_loop(server, {"sleep": 0.6})  # ran inline, and was over 10 x 50 ms: the next calls go to threads
    assert _calls_until_inline(server) >= 2 * FIRST_NEEDED  # and must show a streak twice as long
    assert all(_on_loop(server, {"sleep": 0.1}) for _ in range(SLOW_ALLOWED))  # slow a few times: let pass
    assert _on_loop(server, {"sleep": 0.1}) and not _on_loop(server)  # once more: back to threads
    assert server.call("GET", "/").status == 200


def test_zero_keeps_every_call_on_worker_threads(servers, loop_mode):
    server = servers.start(SCRIPTS / "kitchen.py", "--inline-run-ms", "0", env=loop_mode)
    assert not any(_on_loop(server) for _ in range(4 * FIRST_NEEDED))


def test_inline_and_threaded_calls_answer_alike(servers, loop_mode):
    threaded = servers.start(SCRIPTS / "kitchen.py", "--inline-run-ms", "0", env=loop_mode)
    inline = servers.start(SCRIPTS / "kitchen.py", *INLINE, env=loop_mode)
    _calls_until_inline(inline)
    assert _answers(inline) == _answers(threaded)
    assert _on_loop(inline)  # the cases above (failures included) kept it inline


def test_a_runaway_inline_call_is_interrupted_at_the_timeout(servers, loop_mode, diabetes):
    server = servers.start(SCRIPTS / "kitchen.py", *INLINE, "--request-timeout-ms", "300", env=loop_mode)
    _calls_until_inline(server)
    a = server.call("POST", "/score", {"spin": 60})  # pure Python: stops at the watchdog's interrupt
    assert a.status == 500 and a.json() == {"message": "Scoring timeout after 300 ms"}
    assert a.headers["x-ms-run-function-failed"] == "True"
    assert server.wait_log(r"run\(\) on the loop thread passed the scoring timeout of 300 ms: interrupted")
    assert server.wait_log(r"did not finish within 300 ms; interrupted it on the loop thread")
    assert server.call("POST", "/score", {"data": diabetes[1]}).status == 200
    assert server.stop() == 0


def test_an_inline_call_blocked_in_c_is_answered_as_timed_out_when_it_returns(servers, loop_mode):
    server = servers.start(SCRIPTS / "kitchen.py", *INLINE, "--request-timeout-ms", "300", env=loop_mode)
    _calls_until_inline(server)
    a = server.call("POST", "/score", {"sleep": 1.5})  # time.sleep: the interrupt lands after it
    assert a.status == 500 and a.json() == {"message": "Scoring timeout after 300 ms"}
    assert server.call("POST", "/score", {"ok": 1}).json() == {"ok": True}  # no stray interrupt later
    assert not _on_loop(server)  # the slow call sent calls back to the threads


def test_a_probe_waits_for_an_inline_call_and_then_answers(servers, loop_mode, tmp_path):
    """Where inline calls differ: nothing else on the process answers while one runs."""
    server = servers.start(SCRIPTS / "kitchen.py", *INLINE, env=loop_mode)
    _calls_until_inline(server)
    started, release = tmp_path / "started", tmp_path / "release"
    results = {}
    blocker = threading.Thread(
        target=lambda: results.setdefault(
            "score",
            server.call("POST", "/score", {"block": {"started": str(started), "release": str(release)}, "main": 1}),
        )
    )
    blocker.start()
    wait_for_file(started)
    probe = threading.Thread(target=lambda: results.setdefault("probe", server.call("GET", "/")))
    probe.start()
    probe.join(0.5)
    probe_before_release = "probe" in results
    release.write_text("go")
    blocker.join(30)
    probe.join(30)
    assert results["score"].json() == {"main": True} and results["probe"].status == 200
    assert not probe_before_release
