"""Benchmark: what the azure_blob state backend costs against the local one, side by side in one run, against a
real Azurite on 127.0.0.1 (tests/azurite_server.py installs and starts it):

- `mlctl apply` of the example (examples/diabetes: model, environment, endpoint, deployment, traffic) from
  nothing, then `mlctl destroy`, alternating local and blob, REPEAT times each (goal: blob adds <= 15 % to apply);
- `mlctl plan --refresh=false` with no changes on 812 resources (bench/plan/run.py's project, 200 endpoints),
  alternating, REPEAT times each (goal: blob adds <= 150 ms).

The local backend is measured twice in each round (before and after the blob runs): the two give the noise of the
baseline. --tree DIR (repeatable) adds a blob column with the `mlctl` package in DIR (before/after in one run,
e.g. `git archive COMMIT mlctl | tar -x -C /tmp/before`).

Run on demand (not in CI):  python3 bench/state/run.py [--repeat 5] [--endpoints 200] [--no-apply] [--no-plan]
    [--tree DIR ...]
Everything is made in a temporary folder and removed afterwards; Azurite is stopped by PID.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
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


def timed(cmd: list[str], env: dict, ok=(0, 2)) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one mlctl run: the CPU of the CLI and of the children it waited for (the
    machine's load moves it far less than the wall time; an endpoint host it leaves running is not counted, alike
    for both backends)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# An editable install's import hook would win over a tree: it is taken out, then the tree's CLI is run (as in
# bench/rollout/run.py); what the CLI starts reaches the tree through PYTHONPATH, which it sets.
FROM_TREE = (
    "import os, runpy, sys\n"
    "os.environ['PYTHONPATH'] = os.pathsep.join(filter(None, [{tree!r}, os.environ.get('PYTHONPATH')]))\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
    "sys.path.insert(0, {tree!r})\n"
    "sys.argv[0] = 'mlctl'\n"
    "runpy.run_module('mlctl.cli', run_name='__main__')\n"
)


def mlctl(root: Path, *args: str, tree: str | None = None) -> list[str]:
    if tree:
        return [sys.executable, "-c", FROM_TREE.format(tree=tree), "-C", str(root), *args]
    return [sys.executable, "-m", "mlctl.cli", "-C", str(root), *args]


def example_copy(dst: Path, model: Path) -> Path:
    shutil.copytree(
        REPO / "examples" / "diabetes", dst, ignore=shutil.ignore_patterns(".mlctl", "__pycache__", "model.pkl")
    )
    (dst / "model").mkdir(exist_ok=True)
    shutil.copy(model, dst / "model" / "model.pkl")
    return dst


def row(what: str, local: list[tuple[float, float]], blob: list[tuple[float, float]]) -> str:
    """One table row: wall medians (minimums) and what blob adds to the local median, then the same for CPU
    (`local` holds both baseline runs of every round)."""
    out = f"| {what} |"
    for i in (0, 1):
        lo, bl = [r[i] for r in local], [r[i] for r in blob]
        ml, mb = statistics.median(lo), statistics.median(bl)
        out += (
            f" {ml:.3f} ({min(lo):.3f}) | {mb:.3f} ({min(bl):.3f}) | {mb - ml:+.3f} s, {100 * (mb / ml - 1):+.1f} % |"
        )
    return out


def baseline_row(what: str, first: list, second: list) -> str:
    """The baseline against itself: the local backend's first runs of each round against its second."""
    return row(f"{what}: local, second run of each round (baseline noise)", first, second)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--endpoints", type=int, default=200)
    ap.add_argument("--no-apply", action="store_true")
    ap.add_argument("--no-plan", action="store_true")
    ap.add_argument("--tree", action="append", default=[], help="a folder holding an mlctl package (repeatable)")
    args = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in args.tree]
    from azurite_server import Azurite, install

    install()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-state-") as tmp:
        tmp = Path(tmp)
        azurite = Azurite(tmp / "azurite").start()
        try:
            azurite.service().create_container("bench")
            env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
            rows: list[str] = []
            if not args.no_plan:
                rows += plan_rows(tmp, env, args.repeat, args.endpoints, trees)
            if not args.no_apply:
                rows += apply_rows(tmp, env, args.repeat, trees)
            print(f"load average before: {load_before}, repeat {args.repeat}")
            print(
                "| run | wall: local, median (min) s | wall: azure_blob (Azurite) | wall: blob adds "
                "| CPU: local | CPU: azure_blob | CPU: blob adds |"
            )
            print("|---|---|---|---|---|---|---|")
            print("\n".join(rows))
            print(f"load average after: {os.getloadavg()}")
        finally:
            azurite.stop()


def plan_rows(tmp: Path, env: dict, repeat: int, endpoints: int, trees: list[str]) -> list[str]:
    """`mlctl plan --refresh=false` of 812 resources, no changes (what a pull-request job runs)."""
    pb = _plan_bench()
    local_plan = pb.generate(tmp / "plan-local", endpoints)
    n = pb.write_state(local_plan)
    blob_plan = shutil.copytree(local_plan, tmp / "plan-blob" / "mlctl", ignore=shutil.ignore_patterns(".mlctl"))
    (blob_plan / "mlctl.yaml").write_text(blob_block("bench", "plan.json"))
    subprocess.run(
        mlctl(blob_plan, "state", "push", str(local_plan / ".mlctl" / "state.json")),
        env=env,
        check=True,
        capture_output=True,
    )
    for proj in (local_plan, blob_plan):  # warm both (hash caches, the interpreter's files)
        timed(mlctl(proj, "plan", "--refresh=false"), env)
    plan = ("plan", "--refresh=false", "--detailed-exitcode")
    first: list[tuple[float, float]] = []
    second: list[tuple[float, float]] = []
    blob: dict[str | None, list[tuple[float, float]]] = {t: [] for t in [None, *trees]}
    for _ in range(repeat):  # local, blob (each tree), local again
        first.append(timed(mlctl(local_plan, *plan), env, ok=(0,)))
        for tree, times in blob.items():
            times.append(timed(mlctl(blob_plan, *plan, tree=tree), env, ok=(0,)))
        second.append(timed(mlctl(local_plan, *plan), env, ok=(0,)))
    what = f"`mlctl plan --refresh=false`, no changes, {n} resources"
    return [baseline_row(what, first, second)] + [
        row(what + (f" (blob: {tree})" if tree else ""), first + second, times) for tree, times in blob.items()
    ]


def apply_rows(tmp: Path, env: dict, repeat: int, trees: list[str]) -> list[str]:
    """`mlctl apply` then `mlctl destroy` of examples/diabetes, each round: local, blob (each tree), local again."""
    model = tmp / "trained"
    subprocess.run(
        [sys.executable, str(REPO / "examples" / "diabetes" / "train.py"), str(model)],
        check=True,
        capture_output=True,
    )
    local_ex = example_copy(tmp / "ex-local" / "diabetes", model / "model.pkl")
    blob_ex = example_copy(tmp / "ex-blob" / "diabetes", model / "model.pkl")
    (blob_ex / "mlctl.yaml").write_text(blob_block("bench", "example.json"))
    runs = {"apply": ("apply", "--auto-approve"), "destroy": ("destroy", "--auto-approve")}
    for proj in (local_ex, blob_ex):  # the virtualenv is built once (cached by digest) before timing
        for cmd in runs.values():
            timed(mlctl(proj, *cmd), env, ok=(0,))
    local: dict[str, tuple[list, list]] = {k: ([], []) for k in runs}
    blob: dict[tuple[str, str | None], list] = {(k, t): [] for k in runs for t in [None, *trees]}
    for _ in range(repeat):
        for k, cmd in runs.items():
            local[k][0].append(timed(mlctl(local_ex, *cmd), env, ok=(0,)))
        for tree in [None, *trees]:
            for k, cmd in runs.items():
                blob[k, tree].append(timed(mlctl(blob_ex, *cmd, tree=tree), env, ok=(0,)))
        for k, cmd in runs.items():
            local[k][1].append(timed(mlctl(local_ex, *cmd), env, ok=(0,)))
    out = []
    titles = {
        "apply": "`mlctl apply` of examples/diabetes (5 resources)",
        "destroy": "`mlctl destroy` of examples/diabetes",
    }
    for k, what in titles.items():
        out.append(baseline_row(what, *local[k]))
        for tree in [None, *trees]:
            out.append(row(what + (f" (blob: {tree})" if tree else ""), local[k][0] + local[k][1], blob[k, tree]))
    return out


if __name__ == "__main__":
    main()
