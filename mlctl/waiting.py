"""Waiting for something to become true: `wait_until`, the one poll loop with a deadline and a reason (used
where nothing can be awaited: a process's file, a cluster's status, a host's report)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Timeout(TimeoutError):
    """What was waited for did not happen in time; the message says what it was and how long."""

    def __init__(self, reason: str, waited: float):
        super().__init__(f"timed out after {waited:.0f} s waiting until {reason}")
        self.reason, self.waited = reason, waited


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    reason: str,
    interval: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
):
    """The first true value of `predicate()`, asked every `interval` seconds for `timeout` seconds (once more at
    the end); Timeout naming `reason` ("the endpoint host answers") when it never is."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise Timeout(reason, now - start)
        sleep(min(interval, max(0.0, deadline - now)))
