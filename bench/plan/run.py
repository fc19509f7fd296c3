"""Benchmark: `mlctl plan` on 200 endpoints x 2 deployments, beside `terraform plan` of an equivalent
graph of terraform_data resources (when terraform is on PATH), and `mlctl --help` start-up.

Run on demand (not in CI):  python3 bench/plan/run.py [--endpoints 200] [--repeat 3]
Everything is generated in a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEPLOYMENT = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: {name}
endpoint_name: ep{i}
model: azureml:m{m}:1
code_configuration:
  code: code/
  scoring_script: score.py
environment: azureml:env:1
instance_count: {count}
"""


def generate(root: Path, endpoints: int) -> Path:
    """A project: 10 registered models, 1 environment, `endpoints` endpoints with blue and green deployments."""
    proj = root / "mlctl"
    (proj / "code").mkdir(parents=True)
    (proj / "code" / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")
    (proj / "conda.yml").write_text(
        "name: e\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - scikit-learn==1.5.2\n"
    )
    (proj / "env.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
        "name: env\nversion: 1\nconda_file: conda.yml\nimage: python:3.11\n"
    )
    for m in range(10):
        (proj / "models" / f"m{m}").mkdir(parents=True)
        (proj / "models" / f"m{m}" / "weights.bin").write_bytes(os.urandom(4096))
        (proj / f"m{m}.yml").write_text(
            "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n"
            f"name: m{m}\nversion: 1\npath: models/m{m}/\n"
        )
    for i in range(endpoints):
        (proj / f"ep{i}.yml").write_text(
            "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
            f"name: ep{i}\nauth_mode: key\ntraffic:\n  blue: 90\n  green: 10\n"
        )
        for name in ("blue", "green"):
            (proj / f"ep{i}-{name}.yml").write_text(
                DEPLOYMENT.format(name=name, i=i, m=i % 10, count=1 + (name == "green"))
            )
    return proj


def terraform_project(root: Path, endpoints: int) -> Path:
    tf = root / "terraform"
    tf.mkdir(parents=True)
    blocks = []
    for i in range(endpoints):
        blocks.append(f'resource "terraform_data" "ep{i}" {{\n  input = {{ name = "ep{i}", auth_mode = "key" }}\n}}\n')
        for name in ("blue", "green"):
            blocks.append(
                f'resource "terraform_data" "ep{i}_{name}" {{\n'
                f'  input = {{ endpoint = terraform_data.ep{i}.id, model = "m{i % 10}:1", instance_count = 1 }}\n}}\n'
            )
        blocks.append(
            f'resource "terraform_data" "ep{i}_traffic" {{\n'
            f"  input = {{ blue = terraform_data.ep{i}_blue.id, green = terraform_data.ep{i}_green.id }}\n}}\n"
        )
    (tf / "main.tf").write_text("\n".join(blocks))
    return tf


def run_once(cmd: list[str], cwd: Path, env=None, ok=(0, 2)) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_state(proj: Path) -> int:
    """The state apply would write for the project (every resource ready): for the no-op plan."""
    from mlctl.projectpaths import Project
    from mlctl.schemas.load import load_config
    from mlctl.state.statefile import ResourceState, State, write_state as write

    p = Project.at(proj)
    config = load_config(p)
    config.raise_for_errors()
    state = State()
    state.resources = {str(r.address): ResourceState.from_resource(r) for r in config.resources}
    write(p.state_path, state)
    return len(config.resources)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    mlctl = [sys.executable, "-m", "mlctl.cli"]
    plan = mlctl + ["plan", "--refresh=false"]
    tmp = Path(tempfile.mkdtemp(prefix="mlctl-bench-plan-"))
    n = 4 * args.endpoints
    try:
        fresh = generate(tmp / "fresh", args.endpoints)
        cold = run_once(plan, fresh)  # hashes every file once
        applied = generate(tmp / "applied", args.endpoints)
        n = write_state(applied)
        changed = generate(tmp / "changed", args.endpoints)
        write_state(changed)
        (changed / "code" / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return [raw]\n")
        cases = [
            ("mlctl --help", mlctl + ["--help"], fresh, None),
            (f"mlctl plan, first plan ({n} resources)", plan, fresh, None),
            ("mlctl plan, no changes", plan, applied, None),
            (f"mlctl plan, code edited ({2 * args.endpoints} deployments replaced)", plan, changed, None),
            ("mlctl plan --json, code edited", plan + ["--json"], changed, None),
        ]
        if shutil.which("terraform"):
            env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
            tf_fresh = terraform_project(tmp / "tf-fresh", args.endpoints)
            tf_applied = terraform_project(tmp / "tf-applied", args.endpoints)
            for tf in (tf_fresh, tf_applied):
                subprocess.run(["terraform", "init", "-input=false"], cwd=tf, capture_output=True, env=env, check=True)
            subprocess.run(
                ["terraform", "apply", "-input=false", "-auto-approve"],
                cwd=tf_applied,
                capture_output=True,
                env=env,
                check=True,
            )
            tfp = ["terraform", "plan", "-input=false", "-lock=false"]
            cases += [
                (f"terraform plan, first plan ({4 * args.endpoints} terraform_data)", tfp, tf_fresh, env),
                ("terraform plan, no changes", tfp, tf_applied, env),
                ("terraform plan -refresh=false, no changes", tfp + ["-refresh=false"], tf_applied, env),
            ]
        results: dict[str, list[tuple[float, float]]] = {c[0]: [] for c in cases}
        for _ in range(args.repeat):  # rounds: every case once per round, so machine load hits all alike
            for label, cmd, cwd, env in cases:
                results[label].append(run_once(cmd, cwd, env, ok=(0,) if "--help" in cmd else (0, 2)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [("mlctl plan, first plan, cold hash cache (1 run)", [cold])] + list(results.items())
    width = max(len(r[0]) for r in rows)
    print(
        f"{'what':<{width}}  wall median  wall min  CPU median   "
        f"({args.repeat} rounds, os.getloadavg {os.getloadavg()[0]:.1f})"
    )
    summary = {}
    for label, runs in rows:
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        summary[label] = {
            "wall_median": round(wall, 3),
            "wall_min": round(min(w for w, _ in runs), 3),
            "cpu_median": round(cpu, 3),
        }
        print(f"{label:<{width}}  {wall:11.3f}  {min(w for w, _ in runs):8.3f}  {cpu:10.3f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
