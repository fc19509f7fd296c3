"""Apply's progress for the user: one listener of the engine's hooks that prints what starts, what
drivers report (`RuntimeContext.progress`), what finishes or fails, and shows work still running.

On a terminal, a rich live display (a spinner and the elapsed time per resource being built or rolled
out) under the lines (live.py); elsewhere (CI logs, a pipe) the lines alone, plus a line every
interval for work still running, `image.NAME: still building (30s elapsed)`, as Terraform's "Still
creating... [10s elapsed]" (ticker.py). `MLCTL_PROGRESS_INTERVAL` sets the interval (seconds, default 10).
"""

from __future__ import annotations

import os

DEFAULT_INTERVAL_S = 10.0


def interval_s() -> float:
    """The still-running interval: MLCTL_PROGRESS_INTERVAL seconds (at least 0.1), else 10."""
    try:
        return max(0.1, float(os.environ.get("MLCTL_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def display(console=None):
    """The listener for this output: the live display on a terminal, the ticker's lines elsewhere.
    Use it as a context manager: leaving it stops whatever it started."""
    from rich.console import Console

    console = console or Console(highlight=False, soft_wrap=True)
    if console.is_terminal and not console.is_dumb_terminal:
        from mlctl.progress.live import LiveDisplay

        return LiveDisplay(console, interval_s())
    from mlctl.progress.ticker import TickerDisplay

    return TickerDisplay(console, interval_s())
