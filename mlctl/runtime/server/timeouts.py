"""How a run() past the scoring timeout ends: the CallTimeout answer and the asynchronous Interrupted exception.

A thread running Python code is stopped by raising Interrupted in it from another thread
(``PyThreadState_SetAsyncExc``): it lands at the thread's next bytecode boundary; a blocking C call
(``time.sleep``, a long numpy operation) finishes first. CPython only; a no-op elsewhere.
"""

from __future__ import annotations

import ctypes
from typing import Any


class CallTimeout(Exception):
    """run() did not finish within the timeout."""

    def __init__(self, timeout_ms: int, elapsed_ms: float, abandoned: bool = True) -> None:
        super().__init__(f"Scoring timeout after {timeout_ms} ms")
        self.timeout_ms = timeout_ms
        self.elapsed_ms = elapsed_ms
        self.abandoned = abandoned  # left running on its worker thread (False: it ended, inline)


class Interrupted(BaseException):
    """Raised inside a run() past its timeout to stop it (BaseException: ``except Exception`` in the
    script does not swallow it)."""


def is_interrupted(value: Any) -> bool:
    """Did the call end because of our interrupt (possibly wrapped by the caller)?"""
    return isinstance(value, Interrupted) or isinstance(getattr(value, "__cause__", None), Interrupted)


def interrupt(thread_id: int) -> None:
    """Raise Interrupted asynchronously in another thread."""
    _set_async_exc(thread_id, Interrupted)


def cancel_interrupt(thread_id: int) -> None:
    """Take back an interrupt not yet raised in that thread (nothing happens when none is pending)."""
    _set_async_exc(thread_id, None)


def _set_async_exc(thread_id: int, exc: Any) -> None:
    try:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
        )
    except (AttributeError, OSError):  # pragma: no cover - not CPython
        pass
