"""Apply's progress hooks: named points apply passes through, and progress messages from drivers.

Commands attach a listener (they print; the engine never does). For tests, when the environment
variable `MLCTL_TEST_HOOK_FILE` names a file, every hook point appends one line `POINT ADDRESS`
to it and flushes, so a test can SIGKILL apply at each point in turn; `MLCTL_TEST_HOOK_KILL_AT=N`
makes apply SIGKILL itself at the N-th point (1-based), which pins the point exactly.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

# The points, in the order one change passes them.
APPLY_STARTED = "apply_started"  # the lock is held, nothing changed yet
INTENT_WRITTEN = "intent_written"  # state holds the pending intent of one change
CHANGE_DONE = "change_done"  # the runtime did the change; its result is not yet in state
RESULT_WRITTEN = "result_written"  # state holds the result; the intent is cleared
CHANGE_FAILED = "change_failed"  # the change failed and the failure is recorded
APPLY_FINISHED = "apply_finished"
POINTS = (APPLY_STARTED, INTENT_WRITTEN, CHANGE_DONE, RESULT_WRITTEN, CHANGE_FAILED, APPLY_FINISHED)

Listener = Callable[[str, dict], None]


class Hooks:
    """Fires hook points and progress messages to a listener (point, info) -> None."""

    def __init__(self, listener: Listener | None = None):
        self.listener = listener
        self.file = os.environ.get("MLCTL_TEST_HOOK_FILE")
        kill_at = os.environ.get("MLCTL_TEST_HOOK_KILL_AT")
        self.kill_at = int(kill_at) if kill_at and kill_at.isdigit() else None
        self.count = 0

    def fire(self, point: str, **info) -> None:
        """Pass hook point `point` (one of POINTS); info names the change (address, action, ...)."""
        self.count += 1
        if self.file:
            with open(self.file, "a") as f:
                f.write(f"{point} {info.get('address', '-')}\n")
                f.flush()
                os.fsync(f.fileno())
        if self.kill_at is not None and self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.listener:
            self.listener(point, info)

    def progress(self, address: str, message: str) -> None:
        """A driver's progress message (not a hook point: never written to the test file)."""
        if self.listener:
            self.listener("progress", {"address": address, "message": message})

    def event(self, name: str, **info) -> None:
        """Something worth telling the user that is not a hook point (e.g. a pending intent found)."""
        if self.listener:
            self.listener(name, info)
