"""Benchmark: the CPU time of each stage of a plan (discovery and YAML, validating and normalizing, building, the
state, `plan()`) in one process, the least of N runs, for this checkout and optionally an older copy of the package
side by side (each in its own process, alternating), so a busy machine's load hits both alike.

Run on demand (not in CI):  python3 bench/plan/stages.py [--endpoints 2500] [--repeat 5] [--before DIR]
DIR: `git archive COMMIT mlctl | tar -x -C DIR`. The project is bench/plan/run.py's, made in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from run import _PRELUDE, generate, python, write_state

# Runs in the measured interpreter, in the project folder: prints one JSON object of stage -> least CPU seconds.
_STAGES = """
import copy, gc, json, resource, sys, time
gc.disable()
from mlctl.projectpaths import Project
from mlctl.schemas.discovery import discover
from mlctl.schemas.doccache import DocumentCache
from mlctl.schemas.documents import DISPLAY_ROOT
from mlctl.schemas.normalize import add_document
from mlctl.schemas.specs import Specs
from mlctl.schemas.load import load_config
from mlctl.state.backends import state_backend
from mlctl.state.statefile import read_state
from mlctl.reconciler.plans import plan
p = Project.at(".")
DISPLAY_ROOT.set(str(p.root))
best = {}
def note(name, seconds):
    best[name] = round(min(best.get(name, 1e9), seconds), 3)
for _ in range(int(sys.argv[1])):
    t = time.process_time(); docs, _, _ = discover(p, None)
    note("discovery and YAML (no cache)", time.process_time() - t)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.process_time(); discover(p, DocumentCache(None, b"k" * 32))  # an empty cache with a key: read-ahead
    note("discovery, empty cache: this process", time.process_time() - t)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    note("discovery, empty cache: its child", c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
    docs = [(copy.copy(d), k) for d, k in docs]
    for d, _ in docs:
        d.data = copy.deepcopy(d.data)
    specs, diags = Specs(), []
    t = time.process_time()
    for d, k in docs:
        add_document(d, k, specs, diags)
    note("validating and normalizing", time.process_time() - t)
    t = time.process_time(); config = load_config(p); note("load_config (document cache warm)", time.process_time() - t)
    t = time.process_time(); state = read_state(state_backend(p)); note("reading the state", time.process_time() - t)
    t = time.process_time(); plan(config, state, None); note("plan()", time.process_time() - t)
print(json.dumps(best))
"""


def stages(proj: Path, src: str | None, repeat: int, env: dict) -> dict:
    r = subprocess.run(
        python(src) + ["-c", _PRELUDE + _STAGES, str(repeat)], cwd=proj, env=env, capture_output=True, text=True
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=2500)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--before", metavar="DIR", help="also measure the mlctl package in DIR")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlctl-bench-stages-"))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "xdg")}
    sides = {"now": None} | ({"before": str(Path(args.before).resolve())} if args.before else {})
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
    try:
        projects = {}
        for name, src in sides.items():
            projects[name] = generate(tmp / name, args.endpoints)
            n = write_state(projects[name], src)
        results = {name: stages(projects[name], src, args.repeat, env) for name, src in sides.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{n:,} resources; least CPU seconds of {args.repeat} runs in one process")
    print(f"{'stage':<36}" + "".join(f"{name:>10}" for name in sides))
    for stage in results["now"]:
        print(f"{stage:<36}" + "".join(f"{results[name].get(stage, float('nan')):10.3f}" for name in sides))
    print(f"end {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
