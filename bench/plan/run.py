"""Benchmark: `mlctl plan` on 200 endpoints x 2 deployments, beside `terraform plan` of an equivalent
graph of terraform_data resources (when terraform is on PATH), and `mlctl --help` start-up.

Run on demand (not in CI):  python3 bench/plan/run.py [--endpoints 200] [--repeat 3]
Everything is generated in a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
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
    (proj / "conda.yml").write_text("name: e\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - scikit-learn==1.5.2\n")
    (proj / "env.yml").write_text("$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
                                  "name: env\nversion: 1\nconda_file: conda.yml\nimage: python:3.11\n")
    for m in range(10):
        (proj / "models" / f"m{m}").mkdir(parents=True)
        (proj / "models" / f"m{m}" / "weights.bin").write_bytes(os.urandom(4096))
        (proj / f"m{m}.yml").write_text("$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n"
                                        f"name: m{m}\nversion: 1\npath: models/m{m}/\n")
    for i in range(endpoints):
        (proj / f"ep{i}.yml").write_text("$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
                                        f"name: ep{i}\nauth_mode: key\ntraffic:\n  blue: 90\n  green: 10\n")
        for name in ("blue", "green"):
            (proj / f"ep{i}-{name}.yml").write_text(DEPLOYMENT.format(name=name, i=i, m=i % 10, count=1 + (name == "green")))
    return proj


def terraform_project(root: Path, endpoints: int) -> Path:
    tf = root / "terraform"
    tf.mkdir()
    blocks = []
    for i in range(endpoints):
        blocks.append(f'resource "terraform_data" "ep{i}" {{\n  input = {{ name = "ep{i}", auth_mode = "key" }}\n}}\n')
        for name in ("blue", "green"):
            blocks.append(f'resource "terraform_data" "ep{i}_{name}" {{\n'
                          f'  input = {{ endpoint = terraform_data.ep{i}.id, model = "m{i % 10}:1", instance_count = 1 }}\n}}\n')
        blocks.append(f'resource "terraform_data" "ep{i}_traffic" {{\n'
                      f'  input = {{ blue = terraform_data.ep{i}_blue.id, green = terraform_data.ep{i}_green.id }}\n}}\n')
    (tf / "main.tf").write_text("\n".join(blocks))
    return tf


def timed(cmd: list[str], cwd: Path, repeat: int, env=None, ok=(0, 2)) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
        runs.append(time.perf_counter() - t)
        if r.returncode not in ok:
            raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return statistics.median(runs)


def write_state(proj: Path) -> int:
    """The state apply would write for the project (every resource ready): for the no-op plan."""
    from mlctl.project import Project
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
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    mlctl = [sys.executable, "-m", "mlctl.cli"]
    tmp = Path(tempfile.mkdtemp(prefix="mlctl-bench-plan-"))
    rows = []
    try:
        proj = generate(tmp, args.endpoints)
        rows.append(("mlctl --help", timed(mlctl + ["--help"], proj, args.repeat, ok=(0,))))
        cold = timed(mlctl + ["plan", "--refresh=false"], proj, 1)
        shutil.rmtree(proj / ".mlctl", ignore_errors=True)
        rows.append(("mlctl plan, first plan, cold hash cache", cold))
        rows.append(("mlctl plan, first plan, warm hash cache", timed(mlctl + ["plan", "--refresh=false"], proj, args.repeat)))
        n = write_state(proj)
        rows.append((f"mlctl plan, no changes ({n} resources in state)",
                     timed(mlctl + ["plan", "--refresh=false", "--detailed-exitcode"], proj, args.repeat)))
        (proj / "code" / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return [raw]\n")
        rows.append((f"mlctl plan, code edited ({2 * args.endpoints} deployments replaced)",
                     timed(mlctl + ["plan", "--refresh=false"], proj, args.repeat)))
        rows.append(("mlctl plan --json, code edited", timed(mlctl + ["plan", "--refresh=false", "--json"], proj, args.repeat)))
        if shutil.which("terraform"):
            tf = terraform_project(tmp, args.endpoints)
            env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
            subprocess.run(["terraform", "init", "-input=false"], cwd=tf, capture_output=True, env=env, check=True)
            rows.append((f"terraform plan, first plan ({4 * args.endpoints} terraform_data)",
                         timed(["terraform", "plan", "-input=false", "-lock=false"], tf, args.repeat, env)))
            subprocess.run(["terraform", "apply", "-input=false", "-auto-approve"], cwd=tf, capture_output=True,
                           env=env, check=True)
            rows.append(("terraform plan, no changes (refresh)",
                         timed(["terraform", "plan", "-input=false", "-lock=false"], tf, args.repeat, env)))
            rows.append(("terraform plan -refresh=false, no changes",
                         timed(["terraform", "plan", "-input=false", "-lock=false", "-refresh=false"], tf,
                               args.repeat, env)))
        else:
            rows.append(("terraform plan", float("nan")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  median wall time (s), {args.repeat} runs")
    for what, secs in rows:
        print(f"{what:<{width}}  {secs:.3f}")
    print(json.dumps({what: round(secs, 3) for what, secs in rows}))


if __name__ == "__main__":
    main()
