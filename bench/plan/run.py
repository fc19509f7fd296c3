"""Benchmark: `mlctl plan` on ENDPOINTS endpoints x 2 deployments (4 resources each, plus 10 models and an
environment), warm, cold and after a one-file edit, beside `terraform plan` of an equivalent graph of
terraform_data resources (when terraform is on PATH), and `mlctl --help` start-up; `--curve` reports wall
time and peak memory of a cold and a warm no-change plan at several sizes.

Run on demand (not in CI):  python3 bench/plan/run.py [--endpoints 200] [--repeat 3] [--no-terraform]
                            python3 bench/plan/run.py --curve 250,625,1250,2500
Everything is generated in a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
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


def _tf_id(name: str) -> str:
    """A stable UUID-shaped id for a terraform_data resource (what apply would have made up)."""
    h = hashlib.sha256(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _tf_value(value: dict) -> dict:
    types = {k: "number" if isinstance(v, int) else "string" for k, v in value.items()}
    return {"value": value, "type": ["object", types]}


def terraform_state(tf: Path, endpoints: int) -> None:
    """Write the terraform.tfstate `terraform apply` would write for `terraform_project(..., endpoints)`: applying
    10,000 terraform_data resources took over 14 minutes here, so the bench writes the state directly (as it does
    for mlctl) and checks it with `terraform plan -detailed-exitcode` (no changes) before timing anything."""
    version = json.loads(subprocess.run(["terraform", "version", "-json"], capture_output=True, check=True).stdout)
    resources = []

    def add(name: str, value: dict, deps: list[str]) -> None:
        instance = {
            "schema_version": 0,
            "attributes": {
                "id": _tf_id(name),
                "input": _tf_value(value),
                "output": _tf_value(value),
                "triggers_replace": None,
            },
            "sensitive_attributes": [],
        }
        if deps:
            instance["dependencies"] = [f"terraform_data.{d}" for d in sorted(deps)]
        resources.append(
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": name,
                "provider": 'provider["terraform.io/builtin/terraform"]',
                "instances": [instance],
            }
        )

    for i in range(endpoints):
        add(f"ep{i}", {"auth_mode": "key", "name": f"ep{i}"}, [])
        for name in ("blue", "green"):
            value = {"endpoint": _tf_id(f"ep{i}"), "instance_count": 1, "model": f"m{i % 10}:1"}
            add(f"ep{i}_{name}", value, [f"ep{i}"])
        value = {"blue": _tf_id(f"ep{i}_blue"), "green": _tf_id(f"ep{i}_green")}
        add(f"ep{i}_traffic", value, [f"ep{i}", f"ep{i}_blue", f"ep{i}_green"])
    resources.sort(key=lambda r: r["name"])
    state = {
        "version": 4,
        "terraform_version": version["terraform_version"],
        "serial": 1,
        "lineage": _tf_id(f"lineage-{endpoints}"),
        "outputs": {},
        "resources": resources,
        "check_results": None,
    }
    (tf / "terraform.tfstate").write_text(json.dumps(state, indent=2))


def write_state(proj: Path, src: str | None = None) -> int:
    """The state apply would write for the project (every resource ready): for the no-op plan. Written by
    the mlctl the plans run (`src`: an older copy's folder), so the state's format is the one it reads."""
    code = (
        "import sys\n"
        "try:\n"
        "    from mlctl.projectpaths import Project\n"
        "except ImportError:  # an older copy (--before): the module's name before the kit\n"
        "    from mlctl.project import Project\n"
        "from mlctl.schemas.load import load_config\n"
        "from mlctl.state.statefile import ResourceState, State, write_state\n"
        "p = Project.at(sys.argv[1])\n"
        "config = load_config(p)\n"
        "config.raise_for_errors()\n"
        "state = State()\n"
        "state.resources = {str(r.address): ResourceState.from_resource(r) for r in config.resources}\n"
        "write_state(p.state_path, state)\n"
        "print(len(config.resources))\n"
    )
    r = subprocess.run(python(src) + ["-c", _PRELUDE + code, str(proj)], capture_output=True, text=True, check=True)
    return int(r.stdout)


# Runs an older mlctl from a folder: the editable install's import hook is taken out first.
_PRELUDE = (
    "import os, sys\n"
    "src = os.environ.get('MLCTL_BENCH_SRC')\n"
    "if src:\n"
    "    sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
    "    sys.path.insert(0, src)\n"
)


def python(src: str | None) -> list[str]:
    return [sys.executable] if not src else ["env", f"MLCTL_BENCH_SRC={src}", sys.executable]


def mlctl_cli(src: str | None) -> list[str]:
    """The command that runs mlctl: this checkout's, or the copy in folder `src`."""
    if not src:
        return [sys.executable, "-m", "mlctl.cli"]
    return python(src) + [
        "-c",
        _PRELUDE + "import runpy\nsys.argv[0] = 'mlctl'\nrunpy.run_module('mlctl.cli', run_name='__main__')",
    ]


def run_once(cmd: list[str], cwd: Path, env=None, ok=(0, 2)) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MiB) of one run of `cmd`, from its own rusage (os.wait4)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.stderr and proc.stderr.close()
    if code not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{stderr[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def forget_caches(proj: Path, xdg: Path) -> None:
    """A fresh clone as a pull-request job has it: no hash cache, no document cache, no cache key."""
    for name in ("hashcache.json", "documents.json", "lastplan.json", "planbase.pickle", "configdigests.json"):
        (proj / ".mlctl" / name).unlink(missing_ok=True)
    shutil.rmtree(xdg, ignore_errors=True)


def edit_one(proj: Path) -> None:
    """Change one deployment file (its instance count, back and forth): one update, or back to none."""
    f = proj / "ep0-blue.yml"
    text = f.read_text()
    f.write_text(
        text.replace("instance_count: 1", "instance_count: 3")
        if "instance_count: 1" in text
        else text.replace("instance_count: 3", "instance_count: 1")
    )


def bytecode_env(env: dict, tmp: Path) -> dict:
    """`env` with Python's bytecode written once and read after (in a folder of the bench's own, out of the
    source trees), as a pip-installed mlctl has it: an environment with PYTHONDONTWRITEBYTECODE=1 would compile
    every module mlctl imports on every run."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}


def curve(sizes: list[int], repeat: int, src: str | None = None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mlctl-bench-plan-"))
    xdg = tmp / "xdg"
    env = bytecode_env({**os.environ, "XDG_CACHE_HOME": str(xdg)}, tmp)
    plan = mlctl_cli(src) + ["plan", "--refresh=false"]
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
    print("resources  cold wall  cold MiB  warm wall  warm MiB   (medians of", repeat, "runs)")
    try:
        for endpoints in sizes:
            proj = generate(tmp / f"p{endpoints}", endpoints)
            n = write_state(proj, src)
            cold, warm = [], []
            for _ in range(repeat):
                forget_caches(proj, xdg)
                cold.append(run_once(plan, proj, env))
                warm.append(run_once(plan, proj, env))
            print(
                f"{n:9,}  {statistics.median(c[0] for c in cold):9.2f}  {statistics.median(c[2] for c in cold):8.0f}"
                f"  {statistics.median(w[0] for w in warm):9.2f}  {statistics.median(w[2] for w in warm):8.0f}"
            )
            shutil.rmtree(proj, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"end {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-terraform", action="store_true", help="leave terraform out even when it is on PATH")
    ap.add_argument("--curve", help="comma-separated endpoint counts: cold/warm wall and peak memory at each")
    ap.add_argument(
        "--before",
        metavar="DIR",
        help="also run every mlctl case with the mlctl package in DIR (git archive COMMIT mlctl | tar -x -C DIR)",
    )
    ap.add_argument(
        "--after",
        metavar="DIR",
        help="run this side from a copy of the package in DIR too (a checkout edited during the run changes nothing)",
    )
    args = ap.parse_args()
    if args.curve:
        return curve(
            [int(x) for x in args.curve.split(",")],
            args.repeat,
            str(Path(args.before).resolve()) if args.before else None,
        )
    tmp = Path(tempfile.mkdtemp(prefix="mlctl-bench-plan-"))
    xdg = tmp / "xdg"  # the developer's cache folder (the signing key of the caches), kept across runs
    menv = bytecode_env({**os.environ, "XDG_CACHE_HOME": str(xdg)}, tmp)
    clone_xdg = tmp / "xdg-clone"  # a pull-request job's: made and lost with each run
    cenv = {**menv, "XDG_CACHE_HOME": str(clone_xdg)}
    n = 4 * args.endpoints
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
    cases: list = []
    try:
        now = str(Path(args.after).resolve()) if args.after else None
        for src in [now] + ([str(Path(args.before).resolve())] if args.before else []):
            mlctl = mlctl_cli(src)
            plan = mlctl + ["plan", "--refresh=false"]
            tag = "" if src == now else " [before]"
            base = tmp / ("now" if src == now else "before")
            fresh = generate(base / "fresh", args.endpoints)
            applied = generate(base / "applied", args.endpoints)
            n = write_state(applied, src)
            cold = generate(base / "cold", args.endpoints)
            write_state(cold, src)
            edited = generate(base / "edited", args.endpoints)
            write_state(edited, src)
            changed = generate(base / "changed", args.endpoints)
            write_state(changed, src)
            (changed / "code" / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return [raw]\n")
            for proj in (applied, edited, changed):
                run_once(plan, proj, menv)  # the plan before: caches as a developer's checkout has them
            time.sleep(1.1)  # a plan within a second of a change to its files is not kept (racily clean)
            for proj in (applied, edited, changed):
                run_once(plan, proj, menv)
            run_once(plan + ["--json"], edited, menv)  # a full plan of a folder planned before: the plan base

            def fresh_clone(proj=fresh):
                shutil.rmtree(proj / ".mlctl", ignore_errors=True)
                shutil.rmtree(clone_xdg, ignore_errors=True)

            nothing = lambda: None  # noqa: E731
            cases += [
                ("mlctl --help" + tag, mlctl + ["--help"], fresh, menv, nothing),
                (f"mlctl plan, first plan ({n} resources), fresh clone" + tag, plan, fresh, cenv, fresh_clone),
                ("mlctl plan, no changes, cold (fresh clone: state, no caches)" + tag, plan, cold, cenv,
                 lambda proj=cold: forget_caches(proj, clone_xdg)),
                ("mlctl plan, no changes, warm" + tag, plan, applied, menv, nothing),
                ("mlctl plan, one file edited since the last plan" + tag, plan, edited, menv,
                 lambda proj=edited: edit_one(proj)),
                (f"mlctl plan, code edited ({2 * args.endpoints} deployments replaced)" + tag, plan, changed, menv,
                 nothing),
                ("mlctl plan --json, code edited" + tag, plan + ["--json"], changed, menv, nothing),
            ]  # fmt: skip
        if shutil.which("terraform") and not args.no_terraform:
            env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
            tf_fresh = terraform_project(tmp / "tf-fresh", args.endpoints)
            tf_applied = terraform_project(tmp / "tf-applied", args.endpoints)
            for tf in (tf_fresh, tf_applied):
                subprocess.run(["terraform", "init", "-input=false"], cwd=tf, capture_output=True, env=env, check=True)
            terraform_state(tf_applied, args.endpoints)
            check = subprocess.run(
                ["terraform", "plan", "-input=false", "-lock=false", "-refresh=false", "-detailed-exitcode"],
                cwd=tf_applied,
                capture_output=True,
                text=True,
                env=env,
            )
            if check.returncode != 0:
                raise SystemExit(f"the written terraform state is not what apply writes:\n{check.stdout[-3000:]}")
            tfp = ["terraform", "plan", "-input=false", "-lock=false"]
            cases += [
                (f"terraform plan, first plan ({4 * args.endpoints} terraform_data)", tfp, tf_fresh, env, nothing),
                ("terraform plan, no changes", tfp, tf_applied, env, nothing),
                ("terraform plan -refresh=false, no changes", tfp + ["-refresh=false"], tf_applied, env, nothing),
            ]
        results: dict[str, list[tuple[float, float, float]]] = {c[0]: [] for c in cases}
        for _ in range(args.repeat):  # rounds: every case once per round, so machine load hits all alike
            for label, cmd, cwd, env, prepare in cases:
                prepare()
                results[label].append(run_once(cmd, cwd, env, ok=(0,) if "--help" in cmd else (0, 2)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r) for r in results)
    print(f"{'what':<{width}}  wall median  wall min  CPU median  peak MiB   ({args.repeat} rounds)")
    summary = {}
    for label, runs in results.items():
        wall = statistics.median(w for w, _, _ in runs)
        cpu = statistics.median(c for _, c, _ in runs)
        rss = max(m for _, _, m in runs)
        summary[label] = {
            "wall_median": round(wall, 3),
            "wall_min": round(min(w for w, _, _ in runs), 3),
            "cpu_median": round(cpu, 3),
            "peak_mib": round(rss),
        }
        print(f"{label:<{width}}  {wall:11.3f}  {min(w for w, _, _ in runs):8.3f}  {cpu:10.3f}  {rss:8.0f}")
    print(f"end {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
