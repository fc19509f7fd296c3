"""Reliability report (issue 16): what a real endpoint host loses under abuse, with uvloop and without.

Three scenarios, each against its own real endpoint host (and real scoring-server instances) on
127.0.0.1, each bounded in count and time, every process stopped by PID at the end:

1. connections held at the file limit: the host started with a lowered file limit (soft = hard =
   --file-limit), idle connections opened past it; held / refused (503) counted, a keyed request on a
   keep-alive connection opened before the flood answered during it, and a new one after it;
2. a flood of unauthenticated 60 MiB bodies (--flood-clients clients, --seconds): keyed requests per
   second before and during the flood, the host's resident memory before and at its peak, failures;
3. poison requests: a run() that kills its own process when the body says so (--poison of them) under
   two keyed clients: the poison answers, instance restarts (host status), failed legitimate requests;
4-6. issue 24 (serving.py): --slow-connections slow-header connections without a key, --slow-bodies slow
   60 kB bodies without a key, and a deployment printing --output-mb MB with no newline; for each, the
   share of keyed requests answered 200 meanwhile (kept-alive and on new connections), the host's memory
   and CPU.

Run on demand, never in CI (the figures depend on the machine and its load; nothing is asserted):

    ./dev test tests/host/test_host_imports.py -q       # once: the .venv with the test extra (and uvloop)
    .venv/bin/python bench/reliability/report.py [--loops uvloop,asyncio] [--file-limit 512] [--seconds 5]
                                                 [--flood-clients 8] [--concurrency 4] [--poison 4]
                                                 [--slow-connections 4200] [--slow-bodies 1000] [--output-mb 300]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import pickle
import re
import resource
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for folder in (ROOT, ROOT / "tests" / "host", ROOT / "bench" / "server", HERE):
    sys.path.insert(0, str(folder))

from attacks import BigBodyFlood, RssPeak, open_idle, rss_mb  # noqa: E402
from bench import group_cpu_s  # noqa: E402  (bench/server/bench.py)
from hosttools import SCORE, Host, body, send, wait_until  # noqa: E402
from load import JSON, LoadResult, drive  # noqa: E402
from test_host_auth import post  # noqa: E402
from test_host_flood import limits, start_limited  # noqa: E402
from test_host_supervision import instances  # noqa: E402

import serving  # noqa: E402  (this folder)

from mlctl.runtime.host.runfiles import is_alive  # noqa: E402


@dataclass
class Row:
    loop: str
    scenario: str
    figures: list
    lost: list  # what a legitimate client or the endpoint lost; empty: nothing


def prepare(work: Path) -> tuple[Path, Path]:
    """The tests' score.py (its body can ask run() to kill its process) and a diabetes Ridge model."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    code, model = work / "code", work / "model"
    code.mkdir()
    model.mkdir()
    (code / "score.py").write_text(SCORE)
    with open(model / "model.pkl", "wb") as f:
        pickle.dump(Ridge().fit(*load_diabetes(return_X_y=True)), f)
    return code, model


def started(host: Host, what: str) -> str:
    """A figure of the host's start line: "event loop" (uvloop or asyncio), "connection limit"."""
    found = re.search(rf"pid {host.info.pid}, .*\b{what} (\w+)", host.log())
    return found.group(1) if found else "?"


def still_up(host: Host, pid: int) -> bool:
    """The same host process is alive and answers its admin API."""
    try:
        return host.info.pid == pid and is_alive(pid) and host.client.status() is not None
    except Exception:
        return False


def keyed_on(conn: http.client.HTTPConnection, host: Host) -> int:
    """A keyed request on an open keep-alive connection: its status (0 if the connection failed)."""
    try:
        conn.request("POST", "/score", body=body(), headers={**JSON, **host.auth()})
        answer = conn.getresponse()
        answer.read()
        return answer.status
    except OSError:
        return 0


def keyed_fresh(host: Host, within_s: float = 10.0):
    """A keyed request on a new connection, tried again until 200 or `within_s` (the flood's closing
    connections may still count against the limit): the last status, or the error's name if no answer."""
    end, status = time.monotonic() + within_s, "not sent"
    while time.monotonic() < end:
        try:
            status = post(host, host.auth())[0]
        except OSError as e:
            status = type(getattr(e, "reason", e)).__name__  # urllib wraps the socket's error
        if status == 200:
            break
        time.sleep(0.2)
    return status


def connections_at_the_file_limit(work: Path, code: Path, model: Path, args) -> Row:
    host = start_limited(lambda: Host(work / "data", "ep", code, model), work, args.file_limit)
    try:
        pid, soft = host.info.pid, limits(host.info.pid)[0]
        host.create("blue")
        host.client.set_traffic({"blue": 100})
        conn = http.client.HTTPConnection("127.0.0.1", host.info.port, timeout=30)
        before = keyed_on(conn, host)  # opened before the flood: a client already connected
        socks, counts = open_idle(host.info.port, soft + 100)
        try:
            during = keyed_on(conn, host)
            fresh = keyed_fresh(host, 0.1)  # a new connection while the limit is taken
        finally:
            for sock in socks:
                sock.close()
            conn.close()
        after = keyed_fresh(host)
        figures = [
            f"file limit {soft}, connection limit {started(host, 'connection limit')}",
            f"{soft + 100} idle connections: {counts['held']} held, {counts['refused']} refused 503, "
            f"{counts['closed']} closed unanswered, {counts['failed']} not connected",
            f"keyed on a keep-alive connection: {before} before, {during} during",
            f"keyed on a new connection: {fresh} during"
            + ("" if fresh == 200 else " (turned away: the limit is taken)")
            + f", {after} after",
            f"host {'up (same pid)' if still_up(host, pid) else 'DOWN'}",
        ]
        lost = [
            f"{s} on {when}"
            for s, when in (
                (before, "keep-alive before"),
                (during, "keep-alive during"),
                (after, "new connection after"),
            )
            if s != 200
        ]
        return Row(
            started(host, "event loop"),
            "connections at the file limit",
            figures,
            lost + ([] if still_up(host, pid) else ["the host"]),
        )
    finally:
        host.stop()


def load(host: Host, args) -> LoadResult:
    return drive(
        host.url + "/score",
        body(),
        args.concurrency,
        1_000_000,
        args.seconds,
        warmup_s=0.0,
        headers={**JSON, **host.auth()},
    )


def failures(*results: LoadResult) -> list:
    return [f"{n} keyed answered {kind}" for r in results for kind, n in sorted(r.errors.items())]


def flood_of_big_bodies(work: Path, code: Path, model: Path, args) -> Row:
    host = Host(work / "data", "ep", code, model)
    try:
        pid = host.info.pid
        host.create("blue", concurrent=args.concurrency)  # room for every keyed client: no 429
        host.client.set_traffic({"blue": 100})
        send(host.url + "/score", 200, concurrency=args.concurrency, headers=host.auth())  # warm
        resident = rss_mb(pid)
        cpu = [group_cpu_s(pid)]  # the host's own process group: the gateway, not its instance
        before = load(host, args)
        cpu.append(group_cpu_s(pid))
        mine = time.process_time()  # this process: the flood's clients and the keyed load's
        with RssPeak(pid) as peak, BigBodyFlood(host.info.port, args.seconds + 1, args.flood_clients) as flood:
            during = load(host, args)
            cpu.append(group_cpu_s(pid))
            mine = time.process_time() - mine
        after = keyed_fresh(host)
        answers = ", ".join(f"{n} {status}" for status, n in flood.statuses.most_common())
        figures = [
            f"{args.flood_clients} clients x 60 MiB bodies without a key for {args.seconds + 1:.0f} s: "
            f"answers {answers or 'none'}, {flood.sent_mib:.0f} MiB sent",
            f"keyed req/s: {before.rps:.0f} before, {during.rps:.0f} during "
            f"({100 * during.rps / max(before.rps, 1):.0f} %), {before.requests + during.requests} requests",
            f"host RSS: {resident:.0f} MB before, peak {peak.peak:.0f} MB during "
            f"(VmHWM {rss_mb(pid, 'VmHWM'):.0f} MB); gateway CPU: {100 * (cpu[1] - cpu[0]) / before.seconds:.0f} "
            f"% of a core before, {100 * (cpu[2] - cpu[1]) / during.seconds:.0f} % during (the clients: "
            f"{100 * mine / during.seconds:.0f} %)",
            f"keyed after: {after}; host {'up (same pid)' if still_up(host, pid) else 'DOWN'}",
        ]
        lost = failures(before, during) + ([f"{after} after"] if after != 200 else [])
        return Row(
            started(host, "event loop"),
            "unauthenticated 60 MiB bodies",
            figures,
            lost + ([] if still_up(host, pid) else ["the host"]),
        )
    finally:
        host.stop()


def poison_requests(work: Path, code: Path, model: Path, args) -> Row:
    host = Host(work / "data", "ep", code, model)
    try:
        pid = host.info.pid
        host.create("blue", count=2, env={"SLOW_S": "0.005"})
        host.client.set_traffic({"blue": 100})
        poisoned = []

        def poison():  # one at a time, each once both instances are ready again
            for n in range(args.poison):
                wait_until(lambda: all(i["ready"] for i in instances(host)), 60, "both instances ready")
                poisoned.append(post(host, host.auth(**{"x-request-id": f"poison-{n}"}), data=body(die=True)))
                wait_until(lambda n=n: sum(i["restarts"] for i in instances(host)) >= n + 1, 60, f"restart {n}")

        keyed = send(host.url + "/score", 50_000, concurrency=2, headers=host.auth(), limit_s=180, during=poison)
        wait_until(lambda: all(i["ready"] for i in instances(host)), 60, "both instances ready")
        restarts = sum(i["restarts"] for i in instances(host))
        statuses = collections.Counter(r[0] for r in keyed)
        answers = collections.Counter(p[0] for p in poisoned)
        figures = [
            f"{args.poison} poison requests, answered: "
            + ", ".join(f"{n} x {status}" for status, n in sorted(answers.items())),
            f"instance restarts: {restarts} (2 instances)",
            f"keyed from 2 clients meanwhile: {len(keyed)} requests, "
            + ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items())),
            f"host {'up (same pid)' if still_up(host, pid) else 'DOWN'}",
        ]
        lost = [f"{n} keyed answered {status}" for status, n in sorted(statuses.items()) if status != 200]
        lost += [f"{restarts - args.poison} restarts beyond the poisoned instances"] if restarts > args.poison else []
        lost += [f"{n} poison answered {status}, not 502" for status, n in answers.items() if status != 502]
        return Row(
            started(host, "event loop"),
            "poison requests",
            figures,
            lost + ([] if still_up(host, pid) else ["the host"]),
        )
    finally:
        host.stop()


SCENARIOS = {"connections": connections_at_the_file_limit, "flood": flood_of_big_bodies, "poison": poison_requests}
SCENARIOS.update(serving.SCENARIOS)  # issue 24: slow heads, slow bodies, output with no newline


def has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401

        return True
    except ImportError:
        return False


def print_table(rows: list) -> None:
    print(f"\n{'loop':<8} {'scenario':<31} {'lost':<10} figures")
    for row in rows:
        lost = "nothing" if not row.lost else "; ".join(row.lost)
        print(f"{row.loop:<8} {row.scenario:<31} {lost if not row.lost else 'SEE BELOW':<10} {row.figures[0]}")
        for line in row.figures[1:] + ([f"LOST: {lost}"] if row.lost else []):
            print(textwrap.fill(line, 150, initial_indent=" " * 52, subsequent_indent=" " * 54))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loops", default="uvloop,asyncio", help="event loops the hosts run on (MLCTL_HOST_LOOP)")
    p.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run: " + ",".join(SCENARIOS))
    p.add_argument("--file-limit", type=int, default=512, help="the host's file limit in 'connections'")
    p.add_argument("--seconds", type=float, default=5.0, help="each keyed load's time limit in 'flood'")
    p.add_argument("--flood-clients", type=int, default=8, help="concurrent 60 MiB unauthenticated clients")
    p.add_argument("--concurrency", type=int, default=4, help="keyed clients in 'flood'")
    p.add_argument("--poison", type=int, default=4, help="poison requests in 'poison'")
    p.add_argument("--slow-connections", type=int, default=4200, help="slow-header connections in 'slowheads'")
    p.add_argument("--slow-bodies", type=int, default=1000, help="slow unauthenticated bodies in 'slowbodies'")
    p.add_argument("--output-mb", type=int, default=300, help="MB printed with no newline in 'nonewline'")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # this process opens more than the host may
    mine = hard if hard != resource.RLIM_INFINITY else 65536
    if mine < max(2 * args.file_limit, args.slow_connections, args.slow_bodies) + 200:
        p.error(
            f"this shell's hard file limit {hard} is too low for --file-limit {args.file_limit} or the slow "
            f"connections "
            "(the idle connections are this process's files too): lower --file-limit or raise `ulimit -Hn`"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (mine, hard))
    rows = []
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="mlctl-reliability-") as tmp:
        code, model = prepare(Path(tmp))
        for loop in args.loops.split(","):
            if loop == "uvloop" and not has_uvloop():
                rows.append(Row(loop, "(all)", ["skipped: uvloop is not installed"], []))
                continue
            os.environ["MLCTL_HOST_LOOP"] = loop
            for name in args.only.split(","):
                work = Path(tmp) / f"{loop}-{name}"
                work.mkdir()
                print(f"{loop}: {name} ...", flush=True)
                try:
                    rows.append(SCENARIOS[name](work, code, model, args))
                except Exception as e:  # a scenario that could not finish is a row too, never a silent gap
                    rows.append(Row(loop, name, [f"did not complete: {type(e).__name__}: {e}"], ["unknown"]))
    print_table(rows)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
