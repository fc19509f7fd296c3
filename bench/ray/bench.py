"""Benchmark (on demand, not in CI): the ray runtime against the local runtime on the same model, side by side.

Reports, for the diabetes example served with 2 instances on each runtime: the first apply's wall time,
req/s and p50/p99 latency through mlctl's gateway (with a key) at each concurrency level, the CPU per
request of each component (cpu.py: host, scoring servers, Serve, Ray), and the wall time of a rollout to
a new model version under load (4 keep-alive clients) with the requests that failed during it. The ray
runtime runs on a real two-node Ray cluster started for the run and stopped by process id at the end.
Goal (issue 28): the ray runtime serves at least 0.7 of the local runtime's req/s at concurrency 8.

    sudo python bench/ray/bench.py [--seconds 10] [--levels 1,8] [--rounds 2]

Ray binds the machine's interface address outside a network namespace that holds only loopback, so
the script re-runs itself under `unshare --net` (as root) after building the example's virtualenv
outside (the namespace reaches no package registry).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"
sys.path[:0] = [str(REPO / "tests" / "e2e"), str(REPO / "tests" / "ray"), str(REPO / "bench" / "server")]
from e2e_support import Load  # noqa: E402
from load import drive  # noqa: E402
from raycluster import RayCluster, only_loopback  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpu  # noqa: E402

sys.path.insert(0, str(REPO / "bench" / "rollout"))
from run import mlctl, train  # noqa: E402  (bench/rollout: the CLI timed, a model trained)


def project(tmp: Path, runtime: str, address: str) -> Path:
    root = tmp / runtime
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlctl", "__pycache__"))
    dep = root / "blue-deployment.yml"
    dep.write_text(
        dep.read_text().replace("instance_count: 1", "instance_count: 2")
        + "request_settings:\n  max_concurrent_requests_per_instance: 8\n"
    )
    if runtime == "ray":
        (root / "mlctl.yaml").write_text(f'runtime: ray\nray:\n  address: "{address}"\n  replica_cpus: 0.5\n')
    (root / "model").mkdir(exist_ok=True)
    train(root, 1.0)
    return root


def measure(args) -> None:
    cluster = RayCluster.start()
    try:
        with tempfile.TemporaryDirectory(prefix="mlctl-bench-ray-") as tmp:
            roots = {rt: project(Path(tmp), rt, cluster.address) for rt in ("local", "ray")}
            try:
                run(args, roots)
            finally:
                for root in roots.values():
                    subprocess.run(
                        [sys.executable, "-m", "mlctl.cli", "-C", str(root), "destroy", "--auto-approve"],
                        capture_output=True,
                        timeout=600,
                    )
    finally:
        cluster.stop()


def run(args, roots: dict[str, Path]) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average %.2f %.2f %.2f" % os.getloadavg())
    endpoints = {}
    for rt, root in roots.items():
        took, _ = mlctl(root, "apply", "--auto-approve")
        print(f"{rt}: first apply {took:.1f} s", flush=True)
        port = json.loads(mlctl(root, "show", "diabetes", "--json")[1].stdout)["host"]["port"]
        key = json.loads(mlctl(root, "keys", "diabetes", "--json")[1].stdout)["primaryKey"]
        endpoints[rt] = (port, key)
    body = (EXAMPLE / "sample-request.json").read_bytes()
    print(f"\n{'runtime':<8} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    rps: dict = {}
    for r in range(args.rounds):
        for level in args.levels:
            for rt, (port, key) in endpoints.items():
                before = cpu.snapshot()
                res = drive(
                    f"http://127.0.0.1:{port}/score",
                    body,
                    level,
                    max_seconds=args.seconds,
                    warmup_s=0.0,
                    headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
                )
                used = cpu.used(before, cpu.snapshot())
                rps.setdefault((rt, level), []).append(res.rps)
                per = ", ".join(f"{n} {1000 * s / max(res.requests, 1):.2f}" for n, s in sorted(used.items()) if s > 0)
                print(f"{rt:<8} {level:>4} {res.cells()} {res.error_cells()}   (round {r + 1})", flush=True)
                print(f"{'':<13} CPU ms per request: {per}", flush=True)
    for level in args.levels:
        if rps.get(("local", level)) and rps.get(("ray", level)):
            ratio = max(rps[("ray", level)]) / max(rps[("local", level)])
            print(f"ray / local req/s at concurrency {level} (best rounds): {ratio:.2f}")
    print(f"\n{'runtime':<8} {'rollout s':>9} {'requests':>9} {'failed':>6}")
    for alpha in (2.0, 3.0):
        for rt, root in roots.items():
            port, key = endpoints[rt]
            train(root, alpha)
            with Load(port, key, body) as load:
                time.sleep(1)
                took, _ = mlctl(root, "apply", "--auto-approve")
            print(f"{rt:<8} {took:>9.1f} {load.total():>9} {len(load.failures):>6}", flush=True)
    print("load average at the end %.2f %.2f %.2f" % os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if only_loopback():
        measure(args)
        return
    subprocess.run([sys.executable, str(REPO / "tests" / "ray" / "prepare.py")], check=True)
    os.execvp(
        "unshare", ["unshare", "--net", "bash", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv]
    )


if __name__ == "__main__":
    main()
