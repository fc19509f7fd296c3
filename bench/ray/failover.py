"""Failover of the in-cluster endpoint hosts (`ray.ingress: cluster`) on the ray tests' three machines: the example
applied with 2 instances and 2 hosts, then N rounds of the worker node killed by PID (SIGKILL of its namespace's
processes) and started again, each round's figures in seconds:

- dead: from the kill until the GCS no longer holds the node alive (Ray's health checks: raymachines.HEALTH);
- reported: from then until `mlctl show` reports the worker's host lost (the issue: within 5 s);
- capacity: from "dead" until the deployment has its 2 instances ready again, on the head (the issue: within 30 s);
- host back: from the worker's `ray start` returning until its host serves there again (the issue: within 60 s).

    python bench/ray/failover.py [--rounds 2]    (as root; needs tests/ray/prepare.py's virtualenv first)

Prints each round and the load average (`uptime`) before and after. Not run by CI. Each `show` is a CLI process
(connecting to Ray takes seconds on a busy machine), so "reported" is bounded below by one `show`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "e2e"), str(REPO / "tests" / "ray")]

from rayexample import example_project  # noqa: E402
from raymachines import RayMachines  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    cache = Path(os.environ.get("MLCTL_CACHE") or Path.home() / ".cache" / "mlctl-tests")
    os.environ["MLCTL_CACHE"] = str(cache)
    print("before:", uptime(), flush=True)
    machines = RayMachines.start(cache)
    work = Path(tempfile.mkdtemp(prefix="mlctl-bench-failover-"))
    root = example_project(work / "diabetes", machines.address, instances=2)
    with open(root / "mlctl.yaml", "a") as f:
        f.write("  ingress: cluster\nlisten:\n  address: 0.0.0.0\n")
    try:
        machines.mlctl(root, "apply", "--auto-approve", timeout=1800, env=env())
        worker = machines.worker
        for r in range(args.rounds):
            worker.kill()
            killed = time.monotonic()
            machines.wait_nodes(lambda n: worker.address not in n, 120, "the GCS marks the worker dead")
            dead = time.monotonic()
            wait_until(lambda: any(not h["running"] for h in hosts(show(machines, root))), 120, "host lost", 0.2)
            reported = time.monotonic()
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
            print(
                f"round {r + 1}: dead {dead - killed:.1f} s, reported {reported - dead:.1f} s, capacity "
                f"{capacity - dead:.1f} s, host back {back - rejoined:.1f} s ({uptime()})",
                flush=True,
            )
    finally:
        machines.mlctl(root, "destroy", "--auto-approve", check=False, env=env())
        machines.stop()
    print("after:", uptime())


if __name__ == "__main__":
    main()
