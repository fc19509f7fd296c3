"""Rate-limited logging for what a flood can repeat thousands of times a second (accept() failures,
the event loop's error reports): at most a few records per kind each interval, then one count of
what was left out."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("mlctl.host")


class LogThrottle(logging.Filter):
    """A logging filter (and an event loop exception handler) passing `burst` records per kind per
    `interval_s`; the kind is the record's message template (or the handler context's message)."""

    def __init__(self, burst: int = 5, interval_s: float = 10.0):
        super().__init__()
        self.burst, self.interval_s = burst, interval_s
        self._window: dict[str, list] = {}  # kind -> [window start, passed, suppressed]

    def allow(self, kind: str) -> bool:
        now = time.monotonic()
        window = self._window.get(kind)
        if window is None or now - window[0] >= self.interval_s:
            if window is not None and window[2]:
                log.warning(
                    "%d more log records like %r were left out in the last %.0f s",
                    window[2],
                    kind[:120],
                    now - window[0],
                )
            if len(self._window) > 1000:  # kinds are message templates: few; bounded anyway
                self._window.clear()
            window = self._window[kind] = [now, 0, 0]
        if window[1] < self.burst:
            window[1] += 1
            return True
        window[2] += 1
        return False

    def filter(self, record: logging.LogRecord) -> bool:
        return self.allow(str(record.msg))

    def handle_loop_error(self, loop, context: dict) -> None:
        """For loop.set_exception_handler: the default handler, throttled by the context's message."""
        if self.allow(str(context.get("message", ""))):
            loop.default_exception_handler(context)
