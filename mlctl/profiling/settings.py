"""The flags of `mlctl profile` read and checked against the load's caps: concurrency lists, durations. Pure."""

from __future__ import annotations

import re

from mlctl.errors import Diagnostic, MlctlError
from mlctl.profiling.load import MAX_CONCURRENCY, MAX_DURATION_S, MAX_REQUESTS

MAX_STEPS = 10
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def _bad(flag: str, value: str, what: str, detail: str) -> MlctlError:
    return MlctlError(Diagnostic(f"{flag} {value!r}: {what}", detail=detail, field=flag))


def parse_concurrency(text: str) -> list[int]:
    """Pure: "1,4,16" -> [1, 4, 16] (ascending, each once); MlctlError naming the bad item."""
    items = [x.strip() for x in text.split(",")]
    detail = f"Give a comma-separated list of whole numbers from 1 to {MAX_CONCURRENCY}, e.g. --concurrency 1,4,16."
    levels = set()
    for item in items:
        if not item.isdigit() or not 1 <= int(item) <= MAX_CONCURRENCY:
            raise _bad("--concurrency", text, f"{item!r} is not a concurrency from 1 to {MAX_CONCURRENCY}", detail)
        levels.add(int(item))
    if len(levels) > MAX_STEPS:
        raise _bad("--concurrency", text, f"{len(levels)} levels, at most {MAX_STEPS}", detail)
    return sorted(levels)


def parse_duration(text: str) -> float:
    """Pure: "20s", "500ms", "1m" or "20" (seconds) -> seconds, from more than 0 to MAX_DURATION_S."""
    m = _DURATION.match(text)
    detail = f"Give a duration such as 20s, 500ms or 1m (at most {MAX_DURATION_S:g}s per concurrency)."
    if not m:
        raise _bad("--duration", text, "not a duration", detail)
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not 0 < seconds <= MAX_DURATION_S:
        raise _bad("--duration", text, f"{seconds:g}s is outside the bounds (0, {MAX_DURATION_S:g}s]", detail)
    return seconds


def check_bounds(max_requests: int, target_rps: float | None, target_p99_ms: float | None) -> None:
    """MlctlError for a request cap beyond MAX_REQUESTS or a target that is not positive."""
    if not 1 <= max_requests <= MAX_REQUESTS:
        raise _bad(
            "--max-requests",
            str(max_requests),
            f"outside 1..{MAX_REQUESTS}",
            "The load stops by itself at this many requests per concurrency.",
        )
    for flag, value in (("--target-rps", target_rps), ("--target-p99-ms", target_p99_ms)):
        if value is not None and not value > 0:
            raise _bad(
                flag, f"{value:g}", "a target must be more than 0", "Leave it out to size for the measured load."
            )
