"""Progress where there is no terminal (CI logs, a pipe): plain lines, and one line per interval for
each change still running (`image.NAME: still building (30s elapsed)`), written by a ticker thread that
runs only while some change does and is joined when the last one ends."""

from __future__ import annotations

import threading

import click

from mlctl.progress.work import Beat, Display, elapsed_text


class TickerDisplay(Display):
    """Lines on stdout (failures on stderr), whole, one at a time; the ticker between them."""

    def __init__(self, console, interval: float, clock=None):
        super().__init__(console, interval, **({"clock": clock} if clock else {}))
        self.control = threading.Lock()  # begin and end never interleave
        self.ticker: Beat | None = None

    def write(self, text: str, err: bool = False) -> None:
        click.echo(text, err=err)

    def begin(self) -> None:
        with self.control:
            if self.ticker is None or not self.ticker.alive():
                self.ticker = Beat(min(1.0, self.interval / 10), self._tick)

    def end(self) -> None:
        with self.control:
            ticker, self.ticker = self.ticker, None
        if ticker is not None:
            ticker.stop()

    def _tick(self) -> bool:
        """A still-running line for each change due; False (the ticker ends) once none runs."""
        with self.lock:
            if not self.running:
                return False
            now = self.clock()
            for work in self.running.values():
                while now >= work.next_due:
                    self.line(
                        f"{work.address}: still {work.activity} ({elapsed_text(work.next_due - work.started)} elapsed)"
                    )
                    work.next_due += self.interval
            return True
