"""Apply's progress display on a terminal (rich, forced to a terminal on a StringIO): a golden rendering
of the running changes at a given time, the live display started with the first change and stopped
with the last, and the words of still-running lines."""

from __future__ import annotations

import threading
from io import StringIO

from rich.console import Console

from mlctl.progress import display
from mlctl.progress.live import LiveDisplay
from mlctl.progress.ticker import TickerDisplay
from mlctl.progress.work import activity, elapsed_text


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def terminal() -> Console:
    return Console(file=StringIO(), width=100, color_system=None, force_terminal=True)


GOLDEN = (
    "⠼ image.diabetes-blue-env  building: install: Resolved 37 packages in 1.2s               12s elapsed\n"
    "⠋ deployment.diabetes.blue rolling out: starting the new instances beside the old and w…  0s elapsed\n"
)


def test_the_live_display_renders_each_running_change_with_spinner_message_and_elapsed():
    clock, out = Clock(), terminal()
    live = LiveDisplay(out, 10.0, clock=clock)
    with live:
        live("intent_written", {"address": "image.diabetes-blue-env", "action": "+"})
        live("progress", {"address": "image.diabetes-blue-env", "message": "install: Resolved 37 packages in 1.2s"})
        clock.now += 12.4
        live("intent_written", {"address": "deployment.diabetes.blue", "action": "+/-"})
        live(
            "progress",
            {
                "address": "deployment.diabetes.blue",
                "message": "starting the new instances beside the old and waiting until ready",
            },
        )
        assert live.live is not None  # shown while changes run
        golden = terminal()
        golden.print(live.table(clock.now))
        assert golden.file.getvalue() == GOLDEN
        live("result_written", {"address": "image.diabetes-blue-env"})
        live("result_written", {"address": "deployment.diabetes.blue"})
        assert live.live is None  # and gone with the last one
    text = out.file.getvalue()
    for line in (
        "image.diabetes-blue-env: creating...",
        "image.diabetes-blue-env: done (12.4s)",
        "deployment.diabetes.blue: replacing...",
        "deployment.diabetes.blue: done (0.0s)",
    ):
        assert line in text
    assert not [t for t in threading.enumerate() if t.name == "mlctl-progress" or type(t).__name__ == "_RefreshThread"]


def test_the_display_is_live_on_a_terminal_and_lines_elsewhere():
    assert isinstance(display(terminal()), LiveDisplay)
    assert isinstance(display(Console(file=StringIO(), width=100)), TickerDisplay)


def test_still_running_words_and_elapsed_times():
    assert activity("image.x-env", "+") == "building" and activity("image.x-env", "-/+") == "building"
    assert activity("deployment.e.blue", "+/-") == "rolling out" and activity("deployment.e.blue", "~") == "updating"
    assert activity("endpoint.e", "-") == "deleting" and activity("traffic.e", None) == "changing"
    assert [elapsed_text(s) for s in (10, 30, 60, 90, 125, 0.5, 2)] == [
        "10s",
        "30s",
        "1m0s",
        "1m30s",
        "2m5s",
        "0.5s",
        "2s",
    ]
