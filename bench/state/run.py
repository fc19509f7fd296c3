"""Benchmark: what the azure_blob state backend costs against the local one, side by side in one run, against a
real Azurite on 127.0.0.1 (tests/azurite_server.py installs and starts it):

- `mlctl apply` of the example (examples/diabetes: model, environment, endpoint, deployment, traffic) from
  nothing, then `mlctl destroy`, alternating local and blob, REPEAT times each (goal: blob adds <= 15 % to apply);
- `mlctl plan --refresh=false` with no changes on 812 resources (bench/plan/run.py's project, 200 endpoints),
  alternating, REPEAT times each (goal: blob adds <= 150 ms).

Run on demand (not in CI):  python3 bench/state/run.py [--repeat 5] [--endpoints 200] [--no-apply]
Everything is made in a temporary folder and removed afterwards; Azurite is stopped by PID.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))


def _plan_bench():
    spec = importlib.util.spec_from_file_location("plan_bench", REPO / "bench" / "plan" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blob_block(container: str, name: str) -> str:
    return f"state:\n  backend: azure_blob\n  container: {container}\n  name: {name}\n  lease_seconds: 15\n"


def timed(cmd: list[str], env: dict, ok=(0, 2)) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t
    if r.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    return wall


def mlctl(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mlctl.cli", "-C", str(root), *args]


def example_copy(dst: Path, model: Path) -> Path:
    shutil.copytree(
        REPO / "examples" / "diabetes", dst, ignore=shutil.ignore_patterns(".mlctl", "__pycache__", "model.pkl")
    )
    (dst / "model").mkdir(exist_ok=True)
    shutil.copy(model, dst / "model" / "model.pkl")
    return dst


def row(what: str, local: list[float], blob: list[float]) -> str:
    ml, mb = statistics.median(local), statistics.median(blob)
    return (
        f"| {what} | {ml:.3f} ({min(local):.3f}) | {mb:.3f} ({min(blob):.3f}) | "
        f"{mb - ml:+.3f} s | {100 * (mb / ml - 1):+.1f} % |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--endpoints", type=int, default=200)
    ap.add_argument("--no-apply", action="store_true")
    args = ap.parse_args()
    from azurite_server import Azurite, install

    install()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-state-") as tmp:
        tmp = Path(tmp)
        azurite = Azurite(tmp / "azurite").start()
        try:
            azurite.service().create_container("bench")
            env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
            rows = []
            # plan of 812 resources, no changes, no refresh (what a pull-request job runs)
            pb = _plan_bench()
            local_plan = pb.generate(tmp / "plan-local", args.endpoints)
            n = pb.write_state(local_plan)
            blob_plan = shutil.copytree(
                local_plan, tmp / "plan-blob" / "mlctl", ignore=shutil.ignore_patterns(".mlctl")
            )
            (blob_plan / "mlctl.yaml").write_text(blob_block("bench", "plan.json"))
            subprocess.run(
                mlctl(blob_plan, "state", "push", str(local_plan / ".mlctl" / "state.json")),
                env=env,
                check=True,
                capture_output=True,
            )
            for proj in (local_plan, blob_plan):  # warm both (hash caches, the interpreter's files)
                timed(mlctl(proj, "plan", "--refresh=false"), env)
            local, blob = [], []
            for _ in range(args.repeat):
                local.append(timed(mlctl(local_plan, "plan", "--refresh=false", "--detailed-exitcode"), env, ok=(0,)))
                blob.append(timed(mlctl(blob_plan, "plan", "--refresh=false", "--detailed-exitcode"), env, ok=(0,)))
            rows.append(row(f"`mlctl plan --refresh=false`, no changes, {n} resources", local, blob))
            if not args.no_apply:
                model = tmp / "trained"
                subprocess.run(
                    [sys.executable, str(REPO / "examples" / "diabetes" / "train.py"), str(model)],
                    check=True,
                    capture_output=True,
                )
                local_ex = example_copy(tmp / "ex-local" / "diabetes", model / "model.pkl")
                blob_ex = example_copy(tmp / "ex-blob" / "diabetes", model / "model.pkl")
                (blob_ex / "mlctl.yaml").write_text(blob_block("bench", "example.json"))
                for proj in (local_ex, blob_ex):  # the virtualenv is built once (cached by digest) before timing
                    timed(mlctl(proj, "apply", "--auto-approve"), env, ok=(0,))
                    timed(mlctl(proj, "destroy", "--auto-approve"), env, ok=(0,))
                local, blob, local_d, blob_d = [], [], [], []
                for _ in range(args.repeat):
                    local.append(timed(mlctl(local_ex, "apply", "--auto-approve"), env, ok=(0,)))
                    local_d.append(timed(mlctl(local_ex, "destroy", "--auto-approve"), env, ok=(0,)))
                    blob.append(timed(mlctl(blob_ex, "apply", "--auto-approve"), env, ok=(0,)))
                    blob_d.append(timed(mlctl(blob_ex, "destroy", "--auto-approve"), env, ok=(0,)))
                rows.append(row("`mlctl apply` of examples/diabetes (5 resources)", local, blob))
                rows.append(row("`mlctl destroy` of examples/diabetes", local_d, blob_d))
            print(f"load average before: {load_before}, repeat {args.repeat}")
            print("| run | local: median (min) s | azure_blob (Azurite): median (min) s | blob adds | ratio |")
            print("|---|---|---|---|---|")
            print("\n".join(rows))
            print(f"load average after: {os.getloadavg()}")
        finally:
            azurite.stop()


if __name__ == "__main__":
    main()
