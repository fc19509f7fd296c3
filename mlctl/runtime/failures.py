"""What a failed rollout says: one line, the failure once and its cause (the exception the scoring script
raised, read from the log tail), instead of each layer's prefix nested in the next."""

from __future__ import annotations

import re

# "deployment 'blue' failed: " (the endpoint host's order) and "of deployment 'blue'" (its supervisor) repeat
# what the address already says
_HOST_PREFIX = re.compile(r"^(?:the endpoint host: )?(?:new )?deployment '[^']*' failed: ")
_OF_DEPLOYMENT = re.compile(r" of deployment '[^']*'")
_LOG_PREFIX = re.compile(r"^\S+ \S+ [A-Z] \[\d+\] \S+ - ")  # the scoring server's log line prefix


def failure_line(message: str, log_tail: str = "") -> str:
    """Pure: the one-line summary of a deployment that did not become ready: the endpoint host's `message`
    without the prefixes that repeat the address, then the cause found in `log_tail`, if any
    ("instance 0 exited with code 3 before it was ready: init() raised ValueError: model file is corrupt")."""
    what = _OF_DEPLOYMENT.sub("", _HOST_PREFIX.sub("", message.strip()))
    cause = exception_line(log_tail)
    if not cause or cause in what:
        return what
    if "init function failed" in log_tail or "init() failed" in log_tail:
        return f"{what}: init() raised {cause}"
    return f"{what}: {cause}"


def exception_line(log_tail: str) -> str | None:
    """Pure: the last exception a Python traceback in `log_tail` ended with ("ValueError: bad model"), or None."""
    lines = [_LOG_PREFIX.sub("", line) for line in log_tail.splitlines()]
    starts = [i for i, line in enumerate(lines) if "Traceback (most recent call last):" in line]
    if not starts:
        return None
    for line in lines[starts[-1] + 1 :]:
        if line.strip() and not line.startswith((" ", "\t")):
            return line.strip()[:300]
    return None
