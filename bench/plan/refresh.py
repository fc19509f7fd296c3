"""Benchmark: `mlctl plan --refresh-only` (the nightly drift job) with ENDPOINTS live endpoints on the local
runtime, one deployment each (no environment: each instance runs on mlctl's own interpreter, so nothing is
built), beside `mlctl plan` with refresh and `--refresh=false`; then one profiled `--refresh-only` run, whose
top functions say what dominates.

Run on demand (not in CI):  python3 bench/plan/refresh.py [--endpoints 100] [--repeat 3] [--tree DIR ...]
Starts 2 x ENDPOINTS processes (an endpoint host and a scoring server per endpoint), all bound to loopback or
unix sockets, and destroys them (and the temporary folder) at the end, also on failure. `--tree DIR` (repeatable)
times the same runs with the mlctl package in DIR (`git archive COMMIT mlctl | tar -x -C DIR`) in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import bytecode_env, mlctl_cli, run_once  # noqa: E402

DEPLOYMENT = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: ep{i}
model:
  path: model/
code_configuration:
  code: code/
  scoring_script: score.py
instance_count: 1
"""


def generate(root: Path, endpoints: int) -> Path:
    proj = root / "live"
    (proj / "code").mkdir(parents=True)
    (proj / "model").mkdir()
    (proj / "model" / "weights.bin").write_bytes(os.urandom(1024))
    (proj / "code" / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")
    for i in range(endpoints):
        (proj / f"ep{i}.yml").write_text(
            "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
            f"name: ep{i}\nauth_mode: key\ntraffic:\n  blue: 100\n"
        )
        (proj / f"ep{i}-blue.yml").write_text(DEPLOYMENT.format(i=i))
    return proj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tree", action="append", default=[], metavar="DIR", help="another mlctl package folder")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlctl-bench-refresh-"))
    env = bytecode_env({**os.environ, "XDG_CACHE_HOME": str(tmp / "xdg")}, tmp)
    proj = generate(tmp, args.endpoints)
    mlctl = mlctl_cli(None)
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
    try:
        t = time.perf_counter()
        subprocess.run(mlctl + ["apply", "--auto-approve"], cwd=proj, env=env, check=True, capture_output=True)
        print(f"apply of {args.endpoints} endpoints: {time.perf_counter() - t:.1f} s, load {os.getloadavg()}")
        trees = [("", None)] + [(f" [{d}]", str(Path(d).resolve())) for d in args.tree]
        cases = []
        for tag, src in trees:
            cli = mlctl_cli(src)
            cases += [
                ("plan --refresh-only" + tag, cli + ["plan", "--refresh-only"]),
                ("plan (with refresh)" + tag, cli + ["plan"]),
                ("plan --refresh=false" + tag, cli + ["plan", "--refresh=false"]),
            ]
        results: dict[str, list] = {label: [] for label, _ in cases}
        for _ in range(args.repeat):
            for label, cmd in cases:
                results[label].append(run_once(cmd, proj, env))
        width = max(len(label) for label in results)
        print(f"{'what':<{width}}  wall median  wall min  CPU median  peak MiB   ({args.repeat} rounds)")
        for label, runs in results.items():
            wall = statistics.median(w for w, _, _ in runs)
            cpu = statistics.median(c for _, c, _ in runs)
            print(f"{label:<{width}}  {wall:11.3f}  {min(w for w, _, _ in runs):8.3f}  {cpu:10.3f}  "
                  f"{max(m for _, _, m in runs):8.0f}")  # fmt: skip
        prof = tmp / "refresh.prof"
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "mlctl.cli", "plan", "--refresh-only"],
            cwd=proj,
            env=env,
            check=True,
            capture_output=True,
        )
        stats = pstats.Stats(str(prof))
        stats.sort_stats("cumulative").print_stats(r"mlctl|socket|subprocess|select", 25)
    finally:
        subprocess.run(mlctl + ["destroy", "--auto-approve"], cwd=proj, env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"end {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
