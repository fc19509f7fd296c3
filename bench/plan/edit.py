"""Benchmark: `mlctl plan --refresh=false` after an edit of one deployment file, in a checkout planned before (so
the plan base of mlctl.reconciler.planbase is there), for this checkout (or `--after DIR`) and `--before DIR` side
by side in alternating rounds; wall and CPU time (os.wait4) and peak memory of each plan.

Run on demand (not in CI):  python3 bench/plan/edit.py [--endpoints 2500] [--repeat 3] [--after DIR] [--before DIR]
DIR: `git archive COMMIT mlctl | tar -x -C DIR`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from run import bytecode_env, generate, mlctl_cli, run_once, write_state


def edit(proj: Path, count: int) -> None:
    """One deployment's instance_count set to a value no earlier plan had (the memo never holds it)."""
    f = proj / "ep0-blue.yml"
    f.write_text(
        "\n".join(
            "instance_count: %d" % count if ln.startswith("instance_count:") else ln for ln in f.read_text().split("\n")
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=2500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--after", help="a folder holding the mlctl package to measure (default: this checkout)")
    ap.add_argument("--before", help="a folder holding an older mlctl package, measured in the same rounds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlctl-edit-bench-") as t:
        tmp = Path(t)
        env = bytecode_env({**os.environ, "XDG_CACHE_HOME": str(tmp / "xdg")}, tmp)
        sides = {"after": args.after, **({"before": args.before} if args.before else {})}
        projects = {}
        for name, src in sides.items():
            src = str(Path(src).resolve()) if src else None
            proj = generate(tmp / name, args.endpoints)
            write_state(proj, src)
            plan = mlctl_cli(src) + ["plan", "--refresh=false"]
            time.sleep(1.1)  # a plan within a second of a change to its files is not kept (racily clean)
            run_once(plan, proj, env)  # planned before: the memo is there
            time.sleep(1.1)
            run_once(plan + ["--json"], proj, env)  # the memo misses (another format): a full plan, kept
            projects[name] = (proj, plan)
        print(f"start {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
        results: dict[str, list] = {f"{n}, {how}": [] for n in sides for how in ("at once", "a second later")}
        count = 10
        for _ in range(args.repeat):
            for how in ("at once", "a second later"):
                count += 1
                for name, (proj, plan) in projects.items():
                    edit(proj, count)
                    if how == "a second later":
                        time.sleep(1.1)  # the plan is kept again (the memo then holds the edited plan)
                    results[f"{name}, {how}"].append(run_once(plan, proj, env))
        print(f"end {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
    title = f"one file edited ({4 * args.endpoints + 12} resources)"
    print(f"{title:<34}  wall median  wall min  CPU median  CPU min  peak MiB")
    for label, runs in results.items():
        wall, cpu = [w for w, _, _ in runs], [c for _, c, _ in runs]
        print(
            f"{label:<34}  {statistics.median(wall):11.3f}  {min(wall):8.3f}  {statistics.median(cpu):10.3f}"
            f"  {min(cpu):7.3f}  {max(m for _, _, m in runs):8.0f}"
        )


if __name__ == "__main__":
    main()
