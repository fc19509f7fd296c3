"""Side-by-side benchmark: the mlctl scoring server vs azureml-inference-server-http 1.5.1.

Same score.py (bench/server/score.py), same scikit-learn diabetes Ridge, N processes each (1),
both on 127.0.0.1, the same closed-loop aiohttp load at concurrency 1, 8 and 64 (levels
alternate between the servers, and the whole sweep repeats --rounds times so that
background load on a shared machine hits both alike; figures are pooled). Prints req/s, p50/p99, the ratio, run() alone (the floor)
and each server's overhead over it. Run on demand:

    python3 bench/server/bench.py [--rounds 3] [--seconds 5] [--requests 20000] [--levels 1,8,64] [--processes 1]

The Azure server is installed (once) into bench/.venv-azure with uv.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV = ROOT / "bench" / ".venv-azure"
AZURE_PKG = "azureml-inference-server-http==1.5.1"

sys.path.insert(0, str(HERE))
from load import LoadResult, drive


def azure_python() -> Path:
    """bench/.venv-azure/bin/python with the Azure server and this machine's numpy/scikit-learn versions."""
    py = VENV / "bin" / "python"
    marker = VENV / ".ready"
    if marker.exists():
        return py
    import joblib
    import numpy
    import sklearn

    from mlctl.runtime.local.envs import uv_command

    uv = uv_command()     # this interpreter's own uv (the PyPI package), even when its venv is not on PATH
    if uv is None:
        sys.exit("bench: uv is not installed for this interpreter; run it from mlctl's venv (`./dev test` "
                 "installs it) or `pip install uv`")
    print(f"building {VENV} (uv) ...", flush=True)
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(VENV)], check=True)
    subprocess.run([*uv, "pip", "install", "-q", "--python", str(py), AZURE_PKG,
                    f"scikit-learn=={sklearn.__version__}", f"numpy=={numpy.__version__}",
                    f"joblib=={joblib.__version__}"], check=True)
    marker.write_text("ok\n")
    return py


def train(model_dir: Path) -> List[List[float]]:
    """Train the diabetes Ridge into model_dir; returns a 2-row request body's data."""
    import joblib
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    joblib.dump(Ridge().fit(X, y), model_dir / "diabetes.pkl")
    return X[:2].tolist()


def floor_ms(model_dir: Path, body: str, calls: int = 4000) -> float:
    """The in-process cost of run() alone, per call (best of 3 rounds)."""
    import importlib.util

    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    spec = importlib.util.spec_from_file_location("bench_score", HERE / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.init()
    for _ in range(200):
        mod.run(body)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            mod.run(body)
        best = min(best, (time.perf_counter() - t0) * 1000.0 / calls)
    return best


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path, deadline_s: float = 180.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not ready after {deadline_s}s:\n{log.read_text()[-3000:]}")


def start_mlctl(work: Path, model_dir: Path, processes: int) -> Tuple[List[subprocess.Popen], str]:
    """N server processes sharing one port (--reuse-port when N > 1)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs = []
    for i in range(processes):
        log = work / f"mlctl-{i}.log"
        with open(log, "wb") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "mlctl.runtime.server", "--entry-script", str(HERE / "score.py"),
                 "--model-dir", str(model_dir), "--port", str(port), "--max-concurrent", "1",
                 *(["--reuse-port"] if processes > 1 else [])],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True))
        end = time.monotonic() + 180
        while "listening on" not in log.read_text():
            if procs[-1].poll() is not None or time.monotonic() > end:
                raise SystemExit(f"mlctl server {i} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
    wait_ready(url, procs[0], work / "mlctl-0.log")
    return procs, url


def start_azure(work: Path, model_dir: Path, processes: int) -> Tuple[List[subprocess.Popen], str]:
    py = azure_python()
    log = work / "azure.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(WORKER_COUNT=str(processes), AML_APP_ROOT=str(work))
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(py), str(HERE / "azure_wrapper.py"), "--entry_script", str(HERE / "score.py"),
                                 "--model_dir", str(model_dir), "--port", str(port),
                                 "--worker_count", str(processes)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, log)
    return [proc], url


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def merge(a: "LoadResult | None", b: LoadResult) -> LoadResult:
    """Pool two runs of one level: requests and seconds add up, latencies and errors join."""
    if a is None:
        return LoadResult(b.concurrency, b.requests, b.seconds, list(b.latencies_ms), dict(b.errors))
    errors = dict(a.errors)
    for k, v in b.errors.items():
        errors[k] = errors.get(k, 0) + v
    return LoadResult(a.concurrency, a.requests + b.requests, a.seconds + b.seconds,
                      a.latencies_ms + b.latencies_ms, errors)


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user+system) used so far by every process in a process group (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def row(name: str, r: LoadResult, floor: float, cpu_s: float) -> str:
    per_req = 1000.0 / r.rps if r.rps else float("nan")
    cpu_ms = cpu_s * 1000.0 / r.requests if r.requests else float("nan")
    return (f"{r.concurrency:>4} {name:<7} {r.cells()} {per_req:>8.3f} {per_req - floor:>9.3f} {cpu_ms:>8.3f} "
            f"{r.error_cells()}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="time limit per level, server and round")
    p.add_argument("--requests", type=int, default=20000, help="request limit per level and server")
    p.add_argument("--levels", default="1,8,64")
    p.add_argument("--only", choices=["mlctl", "azure"], default=None)
    p.add_argument("--rounds", type=int, default=3, help="repeat all levels; figures are pooled over rounds")
    p.add_argument("--processes", type=int, default=1,
                   help="server processes each (mlctl: N processes on one port; Azure: WORKER_COUNT=N)")
    args = p.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-") as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        model_dir.mkdir()
        rows = train(model_dir)
        body_str = json.dumps({"data": rows})
        floor = floor_ms(model_dir, body_str)
        print(f"run() alone (floor): {floor:.3f} ms/call = {1000.0 / floor:.0f} calls/s on one core")
        print(f"processes per server: {args.processes}")
        procs: Dict[str, Tuple[List[subprocess.Popen], str]] = {}
        try:
            if args.only != "azure":
                procs["mlctl"] = start_mlctl(work, model_dir, args.processes)
            if args.only != "mlctl":
                procs["azure"] = start_azure(work, model_dir, args.processes)
            header = (f"{'conc':>4} {'server':<7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ms/req':>8} "
                      f"{'overhead':>9} {'cpu ms':>8} {'errors':>6}")
            pooled: Dict[Tuple[str, int], LoadResult] = {}
            cpu_total: Dict[Tuple[str, int], float] = {}
            ratios: Dict[int, List[float]] = {c: [] for c in levels}
            for rnd in range(1, args.rounds + 1):
                print(f"\nround {rnd}/{args.rounds}\n{header}")
                for c in levels:
                    rps: Dict[str, float] = {}
                    for name, (group, url) in procs.items():
                        drive(url + "/score", body_str.encode(), c, 2000, 1.0, warmup_s=0.0)  # warm up
                        cpu0 = sum(group_cpu_s(p.pid) for p in group)
                        r = drive(url + "/score", body_str.encode(), c, args.requests, args.seconds, warmup_s=0.0)
                        cpu = sum(group_cpu_s(p.pid) for p in group) - cpu0
                        print(row(name, r, floor, cpu), flush=True)
                        rps[name] = r.rps
                        key = (name, c)
                        pooled[key] = merge(pooled.get(key), r)
                        cpu_total[key] = cpu_total.get(key, 0.0) + cpu
                    if len(rps) == 2:
                        ratios[c].append(rps["mlctl"] / rps["azure"])
            print(f"\nall {args.rounds} round(s) pooled\n{header}")
            for c in levels:
                for name in procs:
                    print(row(name, pooled[(name, c)], floor, cpu_total[(name, c)]))
            if len(procs) == 2:
                print("\nratio mlctl/azure (req/s):  " + "   ".join(
                    f"c={c}: {pooled[('mlctl', c)].rps / pooled[('azure', c)].rps:.2f}x" for c in levels))
                print("ratio per round:            " + "   ".join(
                    f"c={c}: " + "/".join(f"{x:.2f}" for x in ratios[c]) for c in levels))
                print("p99 mlctl vs azure (ms):    " + "   ".join(
                    f"c={c}: {pooled[('mlctl', c)].percentile(99):.1f} vs {pooled[('azure', c)].percentile(99):.1f}"
                    for c in levels))
        finally:
            for group, _ in procs.values():
                for proc in group:
                    stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
