"""Benchmark (on demand, not in CI): rollout of a new model version with the image cached, under load.

Reports: wall time of `mlctl apply` rolling the diabetes example to a new model version (goal < 5 s,
aim < 2 s) while 4 keep-alive clients send requests, the failed requests during it (goal 0), and
the wall time of a no-op `mlctl plan` and `mlctl apply` (goal < 1 s). Everything runs on 127.0.0.1
in a temporary copy of examples/diabetes, destroyed at the end.

    python bench/rollout/run.py [--rounds 3] [--tree DIR ...]

--variant NAME (repeatable, one after the other in one run) sets the project's mlctl.yaml: `fork` (instances run
as mlctl's user and start by fork from the environment's fork server, the default when mlctl is not root), `fresh`
(the same with `local.fork_server: false`: a fresh interpreter per instance), `asis` (no mlctl.yaml: as root, each
instance confined under a uid of its own, forked by its version's confined fork server), `confined-fresh` (as root,
confined, `local.fork_server: false`), `docker` (`runtime: docker`: a container per
instance), `docker-spare` (the same with `docker.spare_container: true`: the next instance claims a warm spare
container, started once the instance before it was ready). Default: `asis`.

--alternate sets every variant's project up first and then rolls them in turn, round by round (the order reversed
every other round), so the variants meet the same load; it reports the first variant's rollout time over the
second's per round and their median (without it, each variant runs all its rounds, one variant after the other).

--settle S waits S seconds before each rollout (every variant alike): room for a warm spare (or a fork server) to
be ready, as between two real rollouts; each rollout's report says how many of its instances came from a spare.

Each rollout is split with the new instance's log (UTC, ms): `to_init` (the apply's start -> "Invoking user's init
function": the CLI, plan, model registration, the container's creation or the spare's claim, the interpreter and
its imports), `init` (-> "User's init has completed") and `rest` (readiness, traffic, the old one drained, exit).

--tree DIR (repeatable) runs the same bench with the `mlctl` package in DIR (its CLI, endpoint host and scoring
server: e.g. `git archive b51b707 mlctl | tar -x -C /tmp/before`), one tree after the other in one run, for a
before/after comparison; without it, this checkout.
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
sys.path.insert(0, str(REPO / "tests" / "e2e"))
# the same 4 bounded keep-alive clients as the e2e rollout test
from e2e_support import Load
from starts import phases  # (this folder) the new instance's start-up and init() from its log

from mlctl.runtime.host.logfiles import instance_log_path


# An editable install's import hook would win over the tree: it is taken out, then the tree's CLI is run. Its
# endpoint host and scoring servers reach the tree through PYTHONPATH (ahead of the hook in the search).
FROM_TREE = (
    "import runpy, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
    "sys.path.insert(0, {tree!r})\n"
    "sys.argv[0] = 'mlctl'\n"
    "runpy.run_module('mlctl.cli', run_name='__main__')\n"
)
CLAIMED = re.compile(r"claimed its warm spare \w+ in ([0-9.]+) s")  # the host's log
TREE: str | None = None  # the tree under measure (None: this checkout)
VARIANTS = {
    "fork": "local: {instance_user: mlctl}\n",
    "fresh": "local: {instance_user: mlctl, fork_server: false}\n",
    "asis": None,
    "confined-fresh": "local: {fork_server: false}\n",
    "docker": "runtime: docker\n",
    "docker-spare": "runtime: docker\ndocker: {spare_container: true}\n",
}


def mlctl(project, *args, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    env = None
    command = [sys.executable, "-m", "mlctl.cli"]
    if TREE:
        env = {**os.environ, "PYTHONPATH": TREE}
        command = [sys.executable, "-c", FROM_TREE.format(tree=TREE)]
    proc = subprocess.run(
        [*command, "-C", str(project), *args], capture_output=True, text=True, timeout=600, check=False, env=env
    )
    took = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise SystemExit(f"mlctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return took, proc


def train(project: Path, alpha: float) -> None:
    code = (
        "import joblib, sys; from sklearn.datasets import load_diabetes; from sklearn.linear_model import Ridge;"
        "X, y = load_diabetes(return_X_y=True); joblib.dump(Ridge(alpha=float(sys.argv[1])).fit(X, y), sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, str(alpha), str(project / "model" / "model.pkl")], check=True)


def main() -> None:
    global TREE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", action="append", default=[], help="a folder holding an mlctl package (repeatable)")
    ap.add_argument("--variant", action="append", choices=sorted(VARIANTS), default=[], help="(repeatable)")
    ap.add_argument("--settle", type=float, default=0.0, help="seconds before each rollout")
    ap.add_argument("--alternate", action="store_true", help="the variants' rollouts in turn, round by round")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    results = {}
    variants = args.variant or ["asis"]
    if args.alternate:
        results = alternate(args, variants)
    for i, tree in enumerate([] if args.alternate else args.tree or [None]):
        TREE = str(Path(tree).resolve()) if tree else None
        for variant in variants:
            run = one_run(args, VARIANTS[variant])
            next(run)
            for _ in range(args.rounds):
                next(run)
            results[f"{i}: {TREE or 'this checkout'}, {variant}"] = finish(run)
            print(f"load average after {variant}: {os.getloadavg()}", flush=True)
    print(f"load average at end: {os.getloadavg()}")
    print(json.dumps(results, indent=2))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rollout.json").write_text(json.dumps(results, indent=2))


def finish(run) -> dict:
    """The result a run (one_run) returns once it measured its no-op plans and applies and destroyed its project."""
    try:
        next(run)
    except StopIteration as done:
        return done.value
    raise AssertionError("one_run yielded more than its rounds")


def alternate(args, variants: list[str]) -> dict:
    """--alternate: every variant's project set up first, then each round rolls each of them in turn (the order
    reversed every other round), so they meet the same load; the first variant's rollout over the second's, per
    round, is reported with their median."""
    runs = {v: one_run(args, VARIANTS[v]) for v in variants}
    took: dict[str, list[float]] = {v: [] for v in variants}
    try:
        for v in variants:
            next(runs[v])
        for r in range(args.rounds):
            for v in variants if r % 2 == 0 else variants[::-1]:
                print(f"{v}: ", end="", flush=True)
                took[v].append(next(runs[v]))
        results = {v: finish(runs[v]) for v in variants}
    finally:
        for run in runs.values():
            run.close()  # (destroys a project left by a failure)
    if len(variants) > 1:
        ratios = [a / b for a, b in zip(took[variants[0]], took[variants[1]])]
        results["ratio"] = {
            "of": f"{variants[0]} / {variants[1]}",
            "per_round": [round(x, 2) for x in ratios],
            "median": round(statistics.median(ratios), 2),
        }
    return results


def one_run(args, project_file: str | None):
    """A generator: sets the project up and yields None, then rolls it out once per next() and yields the time,
    then measures the no-op plan and apply, destroys it and returns the result."""
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-") as tmp:
        project = Path(tmp) / "diabetes"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mlctl", "__pycache__"))
        if project_file:
            (project / "mlctl.yaml").write_text(project_file)
        # room for the 4 clients on one instance (otherwise Azure's 429 rule applies)
        dep = project / "blue-deployment.yml"
        dep.write_text(dep.read_text() + "request_settings:\n  max_concurrent_requests_per_instance: 4\n")
        (project / "model").mkdir(exist_ok=True)  # the model is trained, not committed
        train(project, 1.0)
        try:
            first, _ = mlctl(project, "apply", "--auto-approve")
            shown = json.loads(mlctl(project, "show", "diabetes", "--json")[1].stdout)
            key = json.loads(mlctl(project, "keys", "diabetes", "--json")[1].stdout)["primaryKey"]
            body = (project / "sample-request.json").read_bytes()
            rollouts, failed, sent, spared, splits, claimed = [], 0, 0, [], [], []
            yield None
            for r in range(args.rounds):
                time.sleep(args.settle)
                train(project, 1.0 + 0.5 * (r + 1))  # new content -> new derived model version
                with Load(shown["host"]["port"], key, body) as load:
                    time.sleep(0.5)
                    t0 = time.time()
                    took, out = mlctl(project, "apply", "--auto-approve")
                    time.sleep(0.5)
                rollouts.append(took)
                shown_now = json.loads(mlctl(project, "show", "diabetes", "--json")[1].stdout)
                instances = [i for d in shown_now["deployments"].values() for i in d.get("instances") or []]
                spared.append(sum(1 for i in instances if i.get("from_spare")))
                to_init, init = phases(instance_log_path(project / ".mlctl", "diabetes", "blue", 0), t0)
                splits.append((to_init, init, took - to_init - init))
                claims = CLAIMED.findall(
                    (project / ".mlctl" / "logs" / "diabetes" / "host.log").read_text(errors="replace")
                )
                claimed.append(float(claims[-1]) if spared[-1] and claims else None)
                print(
                    f"rollout {r + 1}: {took:.2f} s (to init() {to_init:.2f}, init() {init:.2f}), from a spare: "
                    f"{spared[-1]} (claimed in {claimed[-1]} s), load {os.getloadavg()}",
                    flush=True,
                )
                failed += len(load.failures)
                sent += load.total()
                yield took
            plans = [mlctl(project, "plan")[0] for _ in range(args.rounds)]
            applies = [mlctl(project, "apply", "--auto-approve")[0] for _ in range(args.rounds)]
        finally:
            mlctl(project, "destroy", "--auto-approve", check=False)
    return {
        "first_apply_s": round(first, 2),
        "rollout_s": {
            "median": round(statistics.median(rollouts), 2),
            "all": [round(x, 2) for x in rollouts],
            "goal": 5.0,
            "aim": 2.0,
        },
        "split_s": {
            k: round(statistics.median(x[i] for x in splits), 2) for i, k in enumerate(("to_init", "init", "rest"))
        },
        "instances_from_a_spare": spared,
        "spare_claims_s": claimed,
        "requests_during_rollouts": sent,
        "failed_requests": failed,
        "noop_plan_s": round(statistics.median(plans), 2),
        "noop_apply_s": round(statistics.median(applies), 2),
    }


if __name__ == "__main__":
    main()
