"""Failover of the in-cluster endpoint hosts (`ray.ingress: cluster`) on the ray tests' three machines: the example
applied with 2 instances and 2 hosts, then N rounds of the worker node killed by PID (SIGKILL of its namespace's
processes) and started again, each round's figures in seconds:

- dead: from the kill until the GCS no longer holds the node alive (Ray's health checks: raymachines.HEALTH);
- reported: from then until `mlctl show` reports the worker's host lost (the issue: within 5 s), and how long that
  `show` process took (the loss is in Ray's tables at once: a `show` started after it reports it, so "reported" is
  the time one `show` takes, plus the rest of the one under way when the node died);
- capacity: from "dead" until the deployment has its 2 instances ready again, on the head (the issue: within 30 s);
- host back: from the worker's `ray start` returning until its host serves there again (the issue: within 60 s).

And where "capacity" goes, from the logs' timestamps (seconds after "dead"): `serve noticed` (Serve's controller logs
that it adds a replica), `replica started` (the controller logs the replacement started: its worker process, runtime
env, the scoring server's start and init()), `host ready` (the head's host logs the instance ready again: its lookup
of the replacement in the directory and its readiness probe). With `--load N`, N keep-alive HTTPS clients send
requests to the head's host meanwhile (bounded in count and time), as the ingress test's load does.

    python bench/ray/failover.py [--rounds 1] [--load 8]    (as root; needs tests/ray/prepare.py's virtualenv first)

Prints each round and the load average (`uptime`) before and after. Only the first round loses a scoring server:
the replicas do not spread back onto the rejoined worker (docs/runtime.md, "What is not done yet"), so a later round
kills only the worker's host and its "capacity" is 0 s; start the script again for another figure of capacity. Not
run by CI. Each `show` is a CLI process (connecting to Ray takes seconds on a busy machine), so "reported" is bounded
below by one `show`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import ssl
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "e2e"), str(REPO / "tests" / "ray")]

from e2e_support import Load  # noqa: E402
from rayexample import example_project  # noqa: E402
from raymachines import RayMachines, joined  # noqa: E402

from mlctl.waiting import wait_until  # noqa: E402


def uptime() -> str:
    return os.popen("uptime").read().strip()


def show(machines, root) -> dict:
    done = machines.mlctl(root, "show", "diabetes", "--json", check=False, env=env())
    return json.loads(done.stdout) if done.returncode == 0 else {}


def env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


def hosts(shown: dict) -> list[dict]:
    return (shown.get("host") or {}).get("hosts") or []


STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def stamped(lines, pattern: str, after: float) -> float | None:
    """The earliest wall-clock time (epoch s) of a line matching `pattern` stamped at or after `after`, if any (the
    lines come from several logs, one after the other: the first in their order may be a later one's)."""
    times = []
    for line in lines:
        found = STAMP.search(line)
        if found and re.search(pattern, line):
            at = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if at >= after:
                times.append(at)
    return min(times, default=None)


def breakdown(machines, root, dead_at: float) -> str:
    """Where the seconds from "dead" to "capacity" went, read from Serve's controller log on the head and the
    hosts' logs (`mlctl logs`): each step's seconds after `dead_at` (epoch s), "?" when its line was not found."""
    logs = machines.head.temp_dir / "session_latest" / "logs" / "serve"
    controller = [
        line for f in sorted(logs.glob("controller_*.log")) for line in f.read_text(errors="replace").splitlines()
    ]
    hosts = machines.mlctl(root, "logs", "diabetes", "--lines", "20000", check=False, env=env()).stdout.splitlines()
    steps = {
        "serve noticed": stamped(controller, r"Adding 1 replica", dead_at - 1),
        "replica started": stamped(controller, r"started successfully", dead_at - 1),
        "host ready": stamped(hosts, r"instance \d+ ready again", dead_at - 1),
    }
    return ", ".join(f"{k} {v - dead_at:.1f} s" if v else f"{k} ?" for k, v in steps.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--load", type=int, default=0, help="clients sending requests to the head's host meanwhile")
    args = ap.parse_args()
    cache = Path(os.environ.get("MLCTL_CACHE") or Path.home() / ".cache" / "mlctl-tests")
    os.environ["MLCTL_CACHE"] = str(cache)
    print("before:", uptime(), flush=True)
    machines = RayMachines.start(cache)
    work = Path(tempfile.mkdtemp(prefix="mlctl-bench-failover-"))
    root = example_project(work / "diabetes", machines.address, instances=2)
    with open(root / "mlctl.yaml", "a") as f:
        f.write("  ingress: cluster\nlisten:\n  address: 0.0.0.0\n  tls: self-signed\n")  # (as the ingress test)
    with open(root / "blue-deployment.yml", "a") as f:  # room for a load of 8 clients on one host (no 429)
        f.write("request_settings:\n  max_concurrent_requests_per_instance: 4\n")
    try:
        machines.mlctl(root, "apply", "--auto-approve", timeout=1800, env=env())
        for r in range(args.rounds):
            with joined(machines.client), loaded(machines, root, args.load) as load:
                figures = one_round(machines, root)
            failed = f", {len(load.failures)} of {load.total()} requests failed" if load else ""
            print(f"round {r + 1}: {figures}{failed} ({uptime()})", flush=True)
    finally:
        machines.mlctl(root, "destroy", "--auto-approve", check=False, env=env())
        machines.stop()
    print("after:", uptime())


def loaded(machines, root, clients: int):
    """A Load of `clients` keep-alive clients on the head's host (started and stopped by `with`); a null context
    (None) without clients."""
    import contextlib

    if not clients:
        return contextlib.nullcontext()
    shown = show(machines, root)
    head = next(h for h in hosts(shown) if h["node_ip"] == machines.head.address)
    key = json.loads(machines.mlctl(root, "keys", "diabetes", "--json", env=env()).stdout)["primaryKey"]
    body = (root / "sample-request.json").read_bytes()
    context = ssl.create_default_context(cafile=str(root / ".mlctl" / "tls" / "ca.pem"))  # the project's CA
    context.check_hostname = False  # (the load connects to the node's address)
    return Load(head["port"], key, body, host=head["node_ip"], clients=clients, context=context)


def one_round(machines, root) -> str:
    """The worker killed, its loss reported, capacity back, the worker started again and its host back: the
    figures (and the breakdown of "capacity")."""
    worker = machines.worker
    worker.kill()
    killed = time.monotonic()
    machines.wait_nodes(lambda n: worker.address not in n, 120, "the GCS marks the worker dead")
    dead, dead_at = time.monotonic(), time.time()
    shows: list[tuple[float, float]] = []  # (start, end) of each `show` until one reports the loss

    def timed_lost() -> bool:
        shows.append((time.monotonic(), 0.0))
        found = any(not h["running"] for h in hosts(show(machines, root)))
        shows[-1] = (shows[-1][0], time.monotonic())
        return found

    wait_until(timed_lost, 120, "host lost", 0.2)
    reported = time.monotonic()
    started, ended = shows[-1]
    wait_until(
        lambda: show(machines, root).get("deployments", {}).get("blue", {}).get("ready_instances") == 2,
        300,
        "capacity back",
        0.5,
    )
    capacity = time.monotonic()
    worker.start()
    rejoined = time.monotonic()
    wait_until(
        lambda: (h := hosts(show(machines, root))) and all(x["running"] for x in h) and len(h) == 2,
        300,
        "host back",
        0.5,
    )
    back = time.monotonic()
    return (
        f"dead {dead - killed:.1f} s, reported {reported - dead:.1f} s (by a show started {started - dead:.1f} s "
        f"after, which took {ended - started:.1f} s), capacity {capacity - dead:.1f} s "
        f"({breakdown(machines, root, dead_at)}), host back {back - rejoined:.1f} s"
    )


if __name__ == "__main__":
    main()
