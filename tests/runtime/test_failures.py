"""The one-line summary of a failed rollout (issue 31): the failure once, with its cause."""

from mlctl.runtime.failures import exception_line, failure_line

TAIL = """\
2026-12-07 01:35:42,408 I [422] azmlinfsrv - Invoking user's init function
2026-12-07 01:35:42,408 E [422] azmlinfsrv - User's init function failed
2026-12-07 01:35:42,408 E [422] azmlinfsrv - Encountered Exception Traceback (most recent call last):
  File "/srv/serve.py", line 106, in _load
    script.init()
  File "/p/score.py", line 4, in init
    raise ValueError("model file is corrupt")
ValueError: model file is corrupt

2026-12-07 01:35:42,409 I [422] azmlinfsrv - Model Directory Contents:
"""
HOST = "deployment 'blue' failed: instance 0 of deployment 'blue' exited with code 3 before it was ready"


def test_the_host_message_loses_its_repeats_and_gains_the_cause():
    assert failure_line(HOST, TAIL) == (
        "instance 0 exited with code 3 before it was ready: init() raised ValueError: model file is corrupt"
    )


def test_without_a_traceback_the_message_alone():
    assert failure_line(HOST, "2026-12-07 01:35:42,408 I [422] azmlinfsrv - nothing") == (
        "instance 0 exited with code 3 before it was ready"
    )
    assert exception_line("") is None


def test_the_last_traceback_wins_and_a_cause_already_said_is_not_repeated():
    start = "Traceback (most recent call last):\n"
    two = f"{start}  x\nKeyError: 'a'\n{start}  y\nOSError: disk\n"
    assert exception_line(two) == "OSError: disk"
    assert failure_line("readiness failed: OSError: disk", two) == "readiness failed: OSError: disk"
