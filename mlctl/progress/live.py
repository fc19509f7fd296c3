"""Progress on a terminal: the lines, and under them a live display of the changes still running, each
with a spinner, what it is doing, the last thing its driver said and the time elapsed (rich Live, shown
only while some change runs, and removed when the last one ends)."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from mlctl.progress.work import Beat, Display, elapsed_text

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
FRAME_S = 0.1
REFRESH_S = 0.125


class LiveDisplay(Display):
    """The lines printed above a rich Live table of the running changes."""

    def __init__(self, console, interval: float, clock=None):
        super().__init__(console, interval, **({"clock": clock} if clock else {}))
        self.live = None
        self.refresher: Beat | None = None

    def write(self, text: str, err: bool = False) -> None:
        if err:  # stderr, as elsewhere (while live, rich shows it above the display)
            click.echo(text, err=True)
        else:
            self.console.print(Text(text), soft_wrap=True)

    def table(self, now: float | None = None) -> Table:
        """The running changes as rows (spinner, address, activity and last message, elapsed) at `now`."""
        now = self.clock() if now is None else now
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True, width=1)
        grid.add_column(no_wrap=True, style="bold")
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        grid.add_column(no_wrap=True, justify="right")
        for work in tuple(self.running.values()):  # no lock: Live's refresh thread calls this holding its own
            seconds = max(0.0, now - work.started)
            frame = FRAMES[int(seconds / FRAME_S) % len(FRAMES)]
            doing = work.activity + (f": {work.message}" if work.message else "")
            grid.add_row(
                Text(frame, style="cyan"),
                work.address,
                Text(doing, style="dim"),
                f"{elapsed_text(int(seconds))} elapsed",
            )
        return grid

    def begin(self) -> None:
        from rich.live import Live

        with self.lock:  # (the refresh never takes this lock: table() reads without it)
            if self.live is None:
                self.live = Live(
                    get_renderable=self.table,
                    console=self.console,
                    auto_refresh=False,
                    transient=True,
                    redirect_stdout=True,
                    redirect_stderr=True,
                )
                self.live.start(refresh=True)
                self.refresher = Beat(REFRESH_S, self.live.refresh)

    def end(self) -> None:
        with self.lock:
            live, self.live = self.live, None
            refresher, self.refresher = self.refresher, None
        if refresher is not None:
            refresher.stop()
        if live is not None:
            live.stop()
