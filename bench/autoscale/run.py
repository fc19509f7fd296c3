"""Benchmark (on demand, not in CI): autoscaling against a fixed deployment, side by side in one run, and the
cold start of a deployment scaled to zero (issue 29).

A step load, concurrency 1 then 32 then idle (by default 10 s, 20 s and 30 s: half the run idle), against a
deployment autoscaled within [1, 4] and against one fixed at `instance_count: 4`, each in an endpoint host of
its own, one after the other, the whole pair repeated `--rounds` times. For each: the time from the step to 4
ready instances (time to capacity), p50/p99 latency during the step, failed requests, and instance-seconds
used over the run (the instance count, polled every 0.2 s, integrated over time). Then the cold start: a
deployment with `min_instances: 0` left idle until it has no instance, and the first request's latency
(`--cold` times), beside a warm request's.

    .venv/bin/python bench/autoscale/run.py [--rounds 2] [--low 10] [--high 20] [--idle 30] [--window 10]
        [--starts fork,fresh]

`--starts` names how the autoscaled deployment's instances start, each a row of its own in every round: `fork`
(from the environment's fork server, docs/runtime.md) and `fresh` (`fork_server: false`: a new interpreter each).
Every deployment runs as mlctl's own user (`instance_user: mlctl`), unless `--confined`: then, as root, each
deployment's instances run confined under a uid of their own (forked by a confined fork server, or fresh); the
fixed one starts fresh (its instances are up before the step). The cold start is measured per start.

The model is the diabetes Ridge and `bench/autoscale/score.py` waits 20 ms in `run()` (a model that waits on
I/O or a device), so that an instance's capacity (one `run()` at a time) and not this machine's two CPUs is
what more instances add. `max_concurrent_requests_per_instance: 8`, so that 32 clients stay under the 429
limit of 4 instances (2 x 8 x 4) and wait in the queue instead; the autoscaler's metric is then the requests
in flight against 8 slots an instance. Record `uptime` beside the figures (printed first and last).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench" / "server"))

from load import drive  # noqa: E402

from mlctl.runtime.host import secrets  # noqa: E402
from mlctl.runtime.host.client import HostClient, start_host  # noqa: E402

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]
BODY = json.dumps({"data": [ROW]}).encode()


def model_dir(root: Path) -> Path:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    d = root / "model"
    d.mkdir()
    with open(d / "model.pkl", "wb") as f:
        pickle.dump(Ridge(alpha=1.0).fit(X, y), f)
    return d


CONFINED = False  # --confined: as root, instances under a uid of their own (the default instance_user)


def spec(name: str, code: Path, model: Path, count: int, ranged: dict | None, fork: bool = False) -> dict:
    s = {
        "launch": {
            **({} if CONFINED else {"instance_user": "mlctl"}),
            **({} if fork else {"fork_server": False}),
        },
        "name": name,
        "digest": f"sha256:{name}",
        "python": sys.executable,
        "code_dir": str(code),
        "scoring_script": "score.py",
        "model_dir": str(model),
        "instance_count": count,
        "request_settings": {"request_timeout_ms": 60000, "max_concurrent_requests_per_instance": 8},
    }
    if ranged:
        s["scale_settings"] = {"type": "target_utilization", "target_utilization_percentage": 70, **ranged}
    return s


class Counts(threading.Thread):
    """Polls the deployment's instances in rotation every 0.2 s: [(time, count, ready)]."""

    def __init__(self, client: HostClient, name: str):
        super().__init__(daemon=True)
        self.client, self.name, self.samples, self.stop = client, name, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            d = self.client.status()["deployments"].get(self.name) or {}
            self.samples.append((time.monotonic(), len(d.get("instances") or []), d.get("ready_instances", 0)))
            self.stop.wait(0.2)

    def instance_seconds(self) -> float:
        return sum(n * (t2 - t1) for (t1, n, _), (t2, _, _) in zip(self.samples, self.samples[1:]))

    def first_at(self, since: float, ready: int) -> float | None:
        return next((t - since for t, _, r in self.samples if t >= since and r >= ready), None)


def one_run(root: Path, code: Path, model: Path, kind: str, args) -> dict:
    """`kind`: "fixed", or "auto-" and how its instances start ("fork" or "fresh")."""
    data = root / f"data-{kind}-{time.monotonic_ns()}"
    info = start_host(data, "bench", auth_mode="key", port=None)
    client = HostClient(info)
    try:
        ranged = {"min_instances": 1, "max_instances": 4, "polling_interval": 1, "stabilization_window": args.window}
        auto = kind.startswith("auto")
        client.create_deployment(
            spec(kind, code, model, 1 if auto else 4, ranged if auto else None, fork=kind == "auto-fork")
        )
        client.set_traffic({kind: 100})
        url, key = f"http://127.0.0.1:{info.port}/score", secrets.read_keys(data, "bench")["primary"]
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        counts = Counts(client, kind)
        counts.start()
        started = time.monotonic()
        drive(url, BODY, 1, 10**6, args.low, 0.0, headers=headers)
        step = time.monotonic()
        high = drive(url, BODY, 32, 10**6, args.high, 0.0, headers=headers)
        time.sleep(args.idle)
        counts.stop.set()
        counts.join()
        return {
            "kind": kind,
            "seconds": time.monotonic() - started,
            "to_capacity_s": counts.first_at(step, 4),
            "p50_ms": high.percentile(50),
            "p99_ms": high.percentile(99),
            "rps": high.rps,
            "errors": json.dumps(high.errors) if high.errors else "0",
            "instance_seconds": counts.instance_seconds(),
            "max_instances_seen": max(n for _, n, _ in counts.samples),
        }
    finally:
        client.shutdown()


def cold_starts(root: Path, code: Path, model: Path, times: int, fork: bool) -> tuple[list[float], list[float]]:
    """(cold, warm) latencies in ms: the first request after the deployment scaled to zero, and the next one."""
    data = root / f"data-cold-{fork}"
    info = start_host(data, "cold", auth_mode="key", port=None)
    client = HostClient(info)
    cold, warm = [], []
    try:
        ranged = {"min_instances": 0, "max_instances": 1, "polling_interval": 1, "stabilization_window": 1}
        client.create_deployment(spec("zero", code, model, 1, ranged, fork=fork))
        client.set_traffic({"zero": 100})
        key = secrets.read_keys(data, "cold")["primary"]
        for _ in range(times):
            deadline = time.monotonic() + 60
            while client.status()["deployments"]["zero"]["instances"] and time.monotonic() < deadline:
                time.sleep(0.2)
            for into in (cold, warm):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{info.port}/score", BODY, {"Authorization": f"Bearer {key}"}
                )
                t0 = time.perf_counter()
                with urllib.request.urlopen(request, timeout=60) as answer:
                    answer.read()
                into.append((time.perf_counter() - t0) * 1000)
    finally:
        client.shutdown()
    return cold, warm


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--low", type=float, default=10.0, help="seconds at concurrency 1")
    parser.add_argument("--high", type=float, default=20.0, help="seconds at concurrency 32")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds idle after the step")
    parser.add_argument("--window", type=int, default=10, help="the autoscaled deployment's stabilization_window")
    parser.add_argument("--cold", type=int, default=3, help="cold starts measured")
    parser.add_argument("--starts", default="fork,fresh", help="how autoscaled instances start: fork, fresh or both")
    parser.add_argument("--confined", action="store_true", help="as root: instances under uids of their own")
    args = parser.parse_args()
    global CONFINED
    CONFINED = args.confined
    print("uptime before:", uptime(), flush=True)
    root = Path(tempfile.mkdtemp(prefix="mlctl-autoscale-bench-"))
    try:
        root.chmod(0o755)  # (mkdtemp: 0700) the code and model readable by a confined instance's uid
        code = root / "code"
        code.mkdir()
        shutil.copy(Path(__file__).with_name("score.py"), code / "score.py")
        model = model_dir(root)
        starts = [s.strip() for s in args.starts.split(",") if s.strip()]
        kinds = [f"auto-{s}" for s in starts] + ["fixed"]
        rows = [one_run(root, code, model, kind, args) for _ in range(args.rounds) for kind in kinds]
        print(
            f"{'deployment':<10} {'run s':>6} {'to 4 ready s':>12} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>6} "
            f"{'errors':>6} {'inst-s':>7} {'max n':>5}"
        )
        for r in rows:
            cap = f"{r['to_capacity_s']:.1f}" if r["to_capacity_s"] is not None else "never"
            print(
                f"{r['kind']:<10} {r['seconds']:>6.1f} {cap:>12} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
                f"{r['rps']:>6.0f} {r['errors']:>6} {r['instance_seconds']:>7.1f} {r['max_instances_seen']:>5}"
            )
        fixed = [r for r in rows if r["kind"] == "fixed"]
        for start in starts:
            auto = [r for r in rows if r["kind"] == f"auto-{start}"]
            p99 = statistics.median(a["p99_ms"] / f["p99_ms"] for a, f in zip(auto, fixed))
            used = statistics.median(a["instance_seconds"] / f["instance_seconds"] for a, f in zip(auto, fixed))
            print(
                f"auto-{start} / fixed (median of rounds): p99 {p99:.2f}x (goal <= 2x), "
                f"instance-seconds {used:.0%} (goal <= 60 %)"
            )
        for start in starts:
            cold, warm = cold_starts(root, code, model, args.cold, fork=start == "fork")
            print(
                f"cold start, {start} (first request at zero instances): {', '.join(f'{c:.0f}' for c in cold)} ms; "
                f"warm request after it: {', '.join(f'{w:.0f}' for w in warm)} ms"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("uptime after:", uptime(), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("MLCTL_LOG_MAX_BYTES", str(1024 * 1024))
    main()
