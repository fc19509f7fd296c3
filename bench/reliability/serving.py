"""Scenarios of issue 24 ("the host keeps serving") for the reliability report: slow heads and slow bodies
without a key, and an instance printing without a newline. Each measures what keyed clients got meanwhile:
on kept-alive connections (bench/server/load.py's closed loop) and on a new connection per request. Every
attack is bounded in count and time, and binds loopback only (tests/host/hosttools.py's slow_heads and
slow_bodies)."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

from attacks import RssPeak, rss_mb
from bench import group_cpu_s  # bench/server/bench.py
from hosttools import Host, slow_bodies, slow_heads, wait_until
from test_host_auth import post


class FreshClient:
    """Keyed requests, each on a new connection, one after the other, while in the `with` block."""

    def __init__(self, host: Host):
        self.host, self.statuses, self._done = host, collections.Counter(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                self.statuses[post(self.host, self.host.auth())[0]] += 1
            except OSError as e:
                self.statuses[type(getattr(e, "reason", e)).__name__] += 1

    def __enter__(self) -> "FreshClient":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def share(statuses: collections.Counter) -> str:
    total = sum(statuses.values())
    return f"{100 * statuses.get(200, 0) / max(total, 1):.1f} % of {total}"


def under_attack(host: Host, attack, args, row) -> list:
    """Run `attack(started)` in a thread; keyed load (kept-alive and new connections) while it lasts. Returns
    the figures and what was lost, through row(loop, attack counts, kept-alive result, new-connection counts,
    host CPU s, RSS peak)."""
    from report import load  # the keyed closed loop (report.py)

    pid = host.info.pid
    started, result = threading.Event(), {}
    thread = threading.Thread(target=lambda: result.setdefault("attack", attack(started)), daemon=True)
    resident = rss_mb(pid)
    cpu = group_cpu_s(pid)
    with RssPeak(pid) as peak:
        thread.start()
        started.wait(120)
        with FreshClient(host) as fresh:
            kept = load(host, args)
        cpu = group_cpu_s(pid) - cpu
        thread.join()
    return row(result.get("attack", collections.Counter()), kept, fresh.statuses, cpu, resident, peak.peak)


def _figures(what: str, attack, kept, fresh, cpu: float, resident: float, peak: float) -> tuple[list, list]:
    kept_ok = collections.Counter({200: len(kept.latencies_ms), **kept.errors})
    answers = ", ".join(f"{n} {status}" for status, n in attack.most_common() if status != "open at the end")
    figures = [
        f"{what}: host answers {answers}",
        f"keyed kept-alive: {share(kept_ok)} answered 200 ({kept.rps:.0f} req/s); keyed new connections: "
        f"{share(fresh)} answered 200"
        + ("" if set(fresh) <= {200} else f" ({', '.join(f'{n} {s}' for s, n in fresh.items() if s != 200)})"),
        f"host RSS {resident:.0f} MB before, peak {peak:.0f} MB; host CPU {100 * cpu / max(kept.seconds, 0.1):.0f} % "
        f"of a core",
    ]
    lost = [f"{n} keyed kept-alive {kind}" for kind, n in sorted(kept.errors.items())]
    lost += [f"{n} keyed new-connection {s}" for s, n in fresh.items() if s != 200]
    return figures, lost


def _serving(work: Path, code: Path, model: Path, args) -> Host:
    host = Host(work / "data", "ep", code, model)
    host.create("blue", concurrent=args.concurrency)  # room for every keyed client: no 429
    host.client.set_traffic({"blue": 100})
    return host


def _row(host: Host, name: str, described: str):
    """The report row of one attack on `host`: what keyed clients got, the host's CPU and memory, and whether
    it is still up."""
    from report import Row, started, still_up

    pid = host.info.pid

    def row(attack, kept, fresh, cpu, resident, peak):
        figures, lost = _figures(described, attack, kept, fresh, cpu, resident, peak)
        return Row(started(host, "event loop"), name, figures, lost + ([] if still_up(host, pid) else ["host"]))

    return row


def slow_head_attack(work: Path, code: Path, model: Path, args):
    host = _serving(work, code, model, args)
    try:
        described = (
            f"{args.slow_connections} slow-header connections without a key (a byte every 0.5 s) for "
            f"{args.seconds + 2:.0f} s"
        )
        return under_attack(
            host,
            lambda ready: slow_heads(host.info.port, args.slow_connections, args.seconds + 2, 0.5, ready),
            args,
            _row(host, "slow heads", described),
        )
    finally:
        host.stop()


def slow_body_attack(work: Path, code: Path, model: Path, args):
    host = _serving(work, code, model, args)
    try:
        described = (
            f"{args.slow_bodies} slow 60 kB bodies without a key (all but the last byte) for {args.seconds + 2:.0f} s"
        )
        return under_attack(
            host,
            lambda ready: slow_bodies(host.info.port, args.slow_bodies, args.seconds + 2, started=ready),
            args,
            _row(host, "slow bodies", described),
        )
    finally:
        host.stop()


NOISY = """
import os, sys, threading
def _print():
    piece = "x" * 65536
    for _ in range(int(os.environ["MEGABYTES"]) * 16):  # no newline at all
        sys.stdout.write(piece)
        sys.stdout.flush()
    for n in range(100000):  # then a progress bar redrawn with \\r
        sys.stdout.write(f"\\r{n:>8} of 100000")
    sys.stdout.write("\\nnoisy done\\n")
    sys.stdout.flush()
def init():
    threading.Thread(target=_print, daemon=True).start()
def run(raw_data):
    return {"ok": True}
"""


def no_newline_output(work: Path, code: Path, model: Path, args):
    """A second deployment prints --output-mb MB with no newline (then a \\r bar) while keyed clients use blue."""
    host = _serving(work, code, model, args)
    try:
        noisy = work / "noisy"
        noisy.mkdir()
        (noisy / "score.py").write_text(NOISY)
        logs = host.data_dir / "logs" / host.name / "noisy" / "instance-0.log"

        def attack(ready) -> collections.Counter:
            spec = host.spec("noisy", env={"MEGABYTES": str(args.output_mb)})
            host.client.create_deployment({**spec, "code_dir": str(noisy)}, timeout=120)
            ready.set()
            begun = time.monotonic()
            try:
                wait_until(lambda: "noisy done" in logs.read_text(errors="replace"), 600, "the noisy output logged")
                return collections.Counter({f"logged in {time.monotonic() - begun:.1f} s": 1})
            except AssertionError:
                return collections.Counter({"not logged within 600 s": 1})

        described = f"{args.output_mb} MB of instance output with no newline, then a \\r bar"
        return under_attack(host, attack, args, _row(host, "output, no newline", described))
    finally:
        host.stop()


SCENARIOS = {"slowheads": slow_head_attack, "slowbodies": slow_body_attack, "nonewline": no_newline_output}
