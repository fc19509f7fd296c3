"""Benchmark (on demand, not in CI): the docker runtime beside the local one, in one run.

1. Throughput: the diabetes example applied twice, once with `runtime: local` (a scoring-server process)
   and once with `runtime: docker` (a container reached over its bind-mounted unix socket), both behind
   their endpoint host; req/s and p99 through the gateway (keyed, keep-alive, closed loop) at
   concurrency 8 and 64, the two alternating level by level and round by round so background load
   hits both alike. Goal: docker at least 90 % of local. Both run the same Python release: the local copy's
   environment asks for the version of the container's interpreter (`--local-python`; so with mlctl's own
   base image, Debian's python3 both inside and, where the host has it, outside).
2. Rollout: the docker project rolled to a new model version (image cached) while 4 keep-alive
   clients send requests: wall time of `mlctl apply` (goal < 6 s) and failed requests (goal 0).

The machine's load average is printed before and after (the figures measure a shared machine too).
Everything runs on 127.0.0.1 in temporary copies of examples/diabetes, destroyed at the end; the
result goes to bench/results/docker.json.

    python bench/docker/docker_bench.py [--rounds 3] [--seconds 5] [--levels 8,64] [--local-python VERSION|as-is]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "bench" / "rollout"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from e2e_support import Load  # noqa: E402  (the e2e rollout test's 4 bounded keep-alive clients)
from run import mlctl, train  # noqa: E402  (bench/rollout: timed CLI calls, the example's model trained)
from server.load import drive  # noqa: E402

CONCURRENCY = 64  # max_concurrent_requests_per_instance of both: room for the highest level (no 429)


def project(tmp: Path, runtime: str, python: str | None = None) -> Path:
    """A copy of the example on `runtime`, its model trained, room for CONCURRENCY requests per instance, its
    environment asking for Python `python` when given."""
    root = tmp / runtime / "diabetes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlctl", "__pycache__"))
    if python:
        conda = root / "environment" / "conda.yml"
        conda.write_text(re.sub(r"(?m)^(\s*- )python\S*.*$", rf"\g<1>python={python}", conda.read_text()))
    dep = root / "blue-deployment.yml"
    dep.write_text(dep.read_text() + f"request_settings:\n  max_concurrent_requests_per_instance: {CONCURRENCY}\n")
    (root / "mlctl.yaml").write_text(f"runtime: {runtime}\n")
    (root / "model").mkdir(exist_ok=True)
    train(root, 1.0)
    return root


def endpoint(root: Path) -> tuple[str, str]:
    """(scoring URL, primary key) of the project's endpoint."""
    shown = json.loads(mlctl(root, "show", "diabetes", "--json")[1].stdout)
    key = json.loads(mlctl(root, "keys", "diabetes", "--json")[1].stdout)["primaryKey"]
    return shown["scoring_uri"], key


def container_python(root: Path) -> str:
    """The Python version of the docker project's instance image."""
    import docker

    image = json.loads(mlctl(root, "show", "diabetes", "--json")[1].stdout)["deployments"]["blue"]["instances"][0][
        "image"
    ]
    out = docker.from_env().containers.run(
        image, ["python3", "-c", "import platform; print(platform.python_version())"], remove=True, network_mode="none"
    )
    return out.decode().strip()


def throughput(roots: dict[str, Path], levels, rounds: int, seconds: float) -> dict:
    body = (EXAMPLE / "sample-request.json").read_bytes()
    targets = {runtime: endpoint(root) for runtime, root in roots.items()}
    runs: dict[tuple[str, int], list] = {}
    for r in range(rounds):
        for c in levels:
            for runtime, (url, key) in targets.items():
                res = drive(
                    url,
                    body,
                    c,
                    max_requests=50_000,
                    max_seconds=seconds,
                    headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
                )
                runs.setdefault((runtime, c), []).append(res)
                print(f"round {r + 1} c={c:<3} {runtime:<7} {res.cells()} {res.error_cells()}", flush=True)
    out = {}
    for c in levels:
        row = {}
        for runtime in roots:
            rs = runs[(runtime, c)]
            lat = sorted(x for res in rs for x in res.latencies_ms)
            row[runtime] = {
                "rps": round(sum(res.requests for res in rs) / sum(res.seconds for res in rs), 1),
                "p99_ms": round(lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))], 2) if lat else None,
                "errors": sum(sum(res.errors.values()) for res in rs),
            }
        row["docker_vs_local"] = round(row["docker"]["rps"] / row["local"]["rps"], 3) if row["local"]["rps"] else None
        out[f"c{c}"] = row
    return out


def rollouts(root: Path, rounds: int) -> dict:
    url, key = endpoint(root)
    port = int(url.split(":")[2].split("/")[0])
    body = (EXAMPLE / "sample-request.json").read_bytes()
    took, failed, sent = [], 0, 0
    for r in range(rounds):
        train(root, 1.0 + 0.5 * (r + 1))  # new content: a new derived model version, the image cached
        with Load(port, key, body) as load:
            time.sleep(0.5)
            seconds, _ = mlctl(root, "apply", "--auto-approve")
            time.sleep(0.5)
        took.append(round(seconds, 2))
        failed += len(load.failures)
        sent += load.total()
    return {"median_s": statistics.median(took), "all_s": took, "goal_s": 6.0, "failed": failed, "sent": sent}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--levels", default="8,64")
    ap.add_argument(
        "--local-python",
        default=None,
        help="the Python the local copy's environment asks for (default: the container's version; "
        "'as-is': the example's own request)",
    )
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-docker-") as tmp:
        roots = {"docker": project(Path(tmp), "docker")}
        try:
            first = {"docker": round(mlctl(roots["docker"], "apply", "--auto-approve")[0], 2)}
            python = {"docker": container_python(roots["docker"])}
            python["local"] = python["docker"] if args.local_python is None else args.local_python
            roots["local"] = project(Path(tmp), "local", None if python["local"] == "as-is" else python["local"])
            first["local"] = round(mlctl(roots["local"], "apply", "--auto-approve")[0], 2)
            print(f"Python: container {python['docker']}, local {python['local']}", flush=True)
            result = {
                "first_apply_s": first,
                "python": python,
                "throughput": throughput({k: roots[k] for k in ("local", "docker")}, levels, args.rounds, args.seconds),
                "rollout_under_load": rollouts(roots["docker"], args.rounds),
            }
        finally:
            for root in roots.values():
                subprocess.run(
                    [sys.executable, "-m", "mlctl.cli", "-C", str(root), "destroy", "--auto-approve"],
                    capture_output=True,
                    timeout=300,
                    check=False,
                )
    result["load_average"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "results" / "docker.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
