"""What runs while apply carries out orders, and the lines it is told with: the base of both displays.

The listener keeps one `Work` per change started; every line goes out whole under one lock (threads:
the engine's, a driver's, the ticker's), masked (mlctl.masking) so a driver's message never prints a
secret. A display subclass says how a line is written and what runs beside the lines.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from mlctl.masking import masked_text


@dataclass
class Work:
    """One change being carried out: its address, what it is doing ("building"), when it started,
    the last message a driver gave, and when the next still-running line is due."""

    address: str
    activity: str
    started: float
    next_due: float
    message: str = ""


def activity(address: str, action: str | None) -> str:
    """Pure: what a change is doing, in the words of a still-running line: an image is building, a
    replaced deployment rolling out, anything else the action's verb ("creating", "deleting")."""
    from mlctl.reconciler.actions import Action

    act = Action(action) if action else None
    kind = address.split(".", 1)[0]
    if kind == "image" and act in (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.RECREATE):
        return "building"
    if kind == "deployment" and act is Action.REPLACE:
        return "rolling out"
    return act.verb if act is not None else "changing"


def elapsed_text(seconds: float) -> str:
    """Pure: 10s, 1m30s (Terraform's form); a fraction of a second is kept below 10 s (short intervals)."""
    if seconds < 10 and round(seconds, 1) != int(seconds):
        return f"{round(seconds, 1):g}s"
    s = int(round(seconds))
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60}s"


class Beat:
    """A thread that calls `beat()` every `period` seconds until `beat()` returns False or it is
    stopped; `stop()` waits for it to end (so no thread outlives the display)."""

    def __init__(self, period: float, beat):
        self.period, self.beat = period, beat
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mlctl-progress", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(self.period):
            if self.beat() is False:
                return

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.done.set()
        if self.thread is not threading.current_thread():
            self.thread.join()


class Display:
    """The hooks listener: (point, info) -> lines. Subclasses implement `write` and may run beside it
    (`begin` when the first work starts, `end` when none is left or the display is left)."""

    def __init__(self, console, interval: float, clock=time.monotonic):
        self.console, self.interval, self.clock = console, interval, clock
        self.lock = threading.RLock()
        self.running: dict[str, Work] = {}

    # ---- what a subclass provides ---------------------------------------------------------------
    def write(self, text: str, err: bool = False) -> None:
        raise NotImplementedError

    def begin(self) -> None:
        """Work started while none ran."""

    def end(self) -> None:
        """No work is left (or the display is left): stop what `begin` started, and wait for it."""

    # ---- the listener -----------------------------------------------------------------------------
    def line(self, text: str, err: bool = False) -> None:
        with self.lock:
            self.write(masked_text(text), err)

    def __call__(self, point: str, info: dict) -> None:
        address = info.get("address", "")
        with self.lock:
            idle_before = not self.running
            if point == "pending_found":
                self.line(
                    f"Found an interrupted apply: {info.get('action', '?')} of {address} "
                    f"(pid {info.get('pid', '?')}, started {info.get('started_at', '?')}). "
                    "Refresh has read what really runs; continuing from there.",
                    err=True,
                )
            elif point == "intent_written":
                now = self.clock()
                self.running[address] = Work(address, activity(address, info.get("action")), now, now + self.interval)
                from mlctl.reconciler.actions import Action

                self.line(f"{address}: {Action(info['action']).verb if info.get('action') else 'changing'}...")
            elif point == "result_written":
                work = self.running.pop(address, None)
                took = self.clock() - work.started if work else 0.0
                self.line(f"{address}: done ({took:.1f}s)")
            elif point == "change_failed":
                self.running.pop(address, None)
                self.line(f"{address}: FAILED: {info.get('summary', '')}", err=True)
            elif point == "progress":
                message = info.get("message", "")
                if address in self.running:
                    self.running[address].message = masked_text(message)
                self.line(f"{address}: {message}")
            started, finished = idle_before and self.running, not idle_before and not self.running
        if started:
            self.begin()
        elif finished:
            self.end()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with self.lock:
            self.running.clear()
        self.end()
        return False
