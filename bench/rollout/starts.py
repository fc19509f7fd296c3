"""Benchmark (on demand, not in CI): where a rollout's instance start goes, fork server against fresh start,
side by side in one endpoint host, alternating.

Two deployments of the diabetes example (its `score.py`, a joblib Ridge) on one endpoint host, both run as
mlctl's own user: `fork` (from the environment's fork server) and `fresh` (`fork_server: false`). Each round
rolls both to a new version, in alternating order; each roll is timed from the order to its answer (the new
instance ready, traffic on it, the old one drained and stopped), and split with the new instance's own log
(UTC, ms): start-up (order -> "Invoking user's init function": interpreter, server and script imports, or the
fork), init() (-> "User's init has completed"), and the rest (readiness seen, the old instance drained and
stopped). Prints the load average first and last.

    .venv/bin/python bench/rollout/starts.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import calendar
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
sys.path.insert(0, str(REPO))

from mlctl.runtime.host.client import HostClient, start_host  # noqa: E402
from mlctl.runtime.host.logfiles import instance_log_path  # noqa: E402

EXAMPLE = REPO / "examples" / "diabetes"
STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")


def train(model: Path) -> None:
    code = (
        "import joblib, sys; from sklearn.datasets import load_diabetes; from sklearn.linear_model import Ridge;"
        "X, y = load_diabetes(return_X_y=True); joblib.dump(Ridge().fit(X, y), sys.argv[1])"
    )
    (model / "model").mkdir(parents=True)
    subprocess.run([sys.executable, "-c", code, str(model / "model" / "model.pkl")], check=True)


def spec(name: str, code: Path, model: Path, version: int) -> dict:
    return {
        "name": name,
        "digest": f"sha256:{name}-{version}",
        "python": sys.executable,
        "code_dir": str(code),
        "scoring_script": "score.py",
        "model_dir": str(model),
        "instance_count": 1,
        "launch": {"instance_user": "mlctl", **({} if name == "fork" else {"fork_server": False})},
    }


def stamped(line: str) -> float | None:
    m = STAMP.search(line)
    if not m:
        return None
    return calendar.timegm(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000


def phases(log: Path, since: float) -> tuple[float, float]:
    """(start-up, init) seconds of the instance started after `since`, from its log."""
    invoked = done = None
    for line in log.read_text(errors="replace").splitlines():
        t = stamped(line)
        if t is None or t < since - 0.001:
            continue
        if "Invoking user's init function" in line:
            invoked, done = t, None
        elif "User's init has completed" in line and invoked is not None:
            done = t
    if invoked is None or done is None:
        raise SystemExit(f"no init lines after {since} in {log}")
    return invoked - since, done - invoked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="mlctl-starts-bench-"))
    info = None
    try:
        code, model = root / "code", root / "model"
        shutil.copytree(EXAMPLE / "onlinescoring", code)
        train(model)
        info = start_host(root / "data", "starts", auth_mode="key", port=None)
        client = HostClient(info)
        for name in ("fork", "fresh"):
            client.create_deployment(spec(name, code, model, 0), timeout=120)
        rows: dict[str, list[tuple[float, float, float]]] = {"fork": [], "fresh": []}
        for r in range(1, args.rounds + 1):
            for name in ("fork", "fresh") if r % 2 else ("fresh", "fork"):
                t0 = time.time()
                client.roll_deployment(spec(name, code, model, r), timeout=120)
                total = time.time() - t0
                startup, init = phases(instance_log_path(root / "data", "starts", name, 0), t0)
                rows[name].append((total, startup, init))
        print(f"{'start':<6} {'roll s':>7} {'start-up s':>10} {'init s':>7} {'rest s':>7}   (median of {args.rounds})")
        for name, got in rows.items():
            total, startup, init = (statistics.median(x[i] for x in got) for i in range(3))
            rest = statistics.median(x[0] - x[1] - x[2] for x in got)
            print(f"{name:<6} {total:>7.2f} {startup:>10.2f} {init:>7.2f} {rest:>7.2f}")
            print(f"       all rolls: {', '.join(f'{x[0]:.2f}' for x in got)}")
        ratio = statistics.median(f[0] / s[0] for f, s in zip(rows["fork"], rows["fresh"]))
        print(f"fork / fresh roll time, median of the rounds' ratios: {ratio:.2f}")
    finally:
        if info is not None:
            HostClient(info).shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
