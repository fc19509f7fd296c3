"""wait_until: the first true value of its predicate, or Timeout naming what was waited for."""

from __future__ import annotations

import pytest

from mlctl.waiting import Timeout, wait_until


def test_returns_the_first_true_value_and_stops_asking():
    answers = iter([None, 0, "", "ready", "never asked"])
    naps = []
    assert wait_until(lambda: next(answers), 60, "it is ready", interval=0.01, sleep=naps.append) == "ready"
    assert len(naps) == 3


def test_times_out_naming_the_reason_after_asking_once_more_at_the_deadline():
    asked = []
    with pytest.raises(Timeout) as e:
        wait_until(lambda: asked.append(1), 0, "the host answers")
    assert asked == [1] and "waiting until the host answers" in str(e.value)
    assert isinstance(e.value, TimeoutError)


def test_an_error_of_the_predicate_is_not_swallowed():
    def broken():
        raise ValueError("the process exited")

    with pytest.raises(ValueError, match="exited"):
        wait_until(broken, 60, "never")
