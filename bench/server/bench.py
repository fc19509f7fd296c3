"""Side-by-side benchmark of the scoring server: mlctl vs azureml-inference-server-http 1.5.1 vs a bare aiohttp loop.

Same score.py (bench/server/score.py), same scikit-learn diabetes Ridge, a 2-row body, all on 127.0.0.1.
Servers (--servers, default all): `azure` (1 gunicorn worker), `azure-N` (WORKER_COUNT=N), `mlctl` (one
process), `mlctl-N` (WORKER_COUNT=N: one parent, N workers), `bare` (bench/server/bare.py: aiohttp calling
run() on its loop, one process, no access log), `mlctl-tree` (one process from another source tree, --tree,
to compare commits side by side); N is --processes (default 2). Load (--load, default wrk):
`wrk` (compiled; one thread) and/or `python` (load.py, aiohttp client), closed loop at concurrency 1, 8
and 64; levels alternate between the servers and the whole sweep repeats --rounds times (pooled), so
background load on a shared machine hits all alike. Prints req/s, p50/p99, CPU ms per request of each
server's process group (from /proc), then the issue-17 table and the ratios. `--busy N` runs N CPU-bound
processes beside the servers for all the rounds (a busy machine, reproduced; bench/server/busy.py). Run on
demand:

    python3 bench/server/bench.py [--rounds 2] [--seconds 8] [--levels 1,8,64] [--processes 2]
                                  [--servers azure,azure-2,mlctl,mlctl-2,bare] [--load wrk|python|both] [--busy N]

The Azure server is installed (once) into bench/.venv-azure with uv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
from busy import neighbours
from load import LoadResult, drive
from wrk import WrkResult, drive_wrk, wrk_binary


def azure_python() -> Path:
    """bench/.venv-azure/bin/python with the Azure server and this machine's numpy/scikit-learn versions."""
    py = VENV / "bin" / "python"
    marker = VENV / ".ready"
    if marker.exists():
        return py
    import joblib
    import numpy
    import sklearn

    from mlctl.runtime.kit.virtualenvs import uv_command

    uv = uv_command()  # this interpreter's own uv (the PyPI package), even when its venv is not on PATH
    if uv is None:
        sys.exit(
            "bench: uv is not installed for this interpreter; run it from mlctl's venv (`./dev test` "
            "installs it) or `pip install uv`"
        )
    print(f"building {VENV} (uv) ...", flush=True)
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(VENV)], check=True)
    subprocess.run(
        [
            *uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(py),
            AZURE_PKG,
            f"scikit-learn=={sklearn.__version__}",
            f"numpy=={numpy.__version__}",
            f"joblib=={joblib.__version__}",
        ],
        check=True,
    )
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


def _started(work: Path, name: str, cmd: list[str], env: dict) -> subprocess.Popen:
    log = work / f"{name}.log"
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True)


def start_mlctl(
    work: Path, model_dir: Path, processes: int, tree: Path = ROOT, name: str = ""
) -> Tuple[List[subprocess.Popen], str]:
    """One scoring-server instance with WORKER_COUNT=processes (one parent process when > 1), as instances run,
    from the mlctl source tree `tree` (this one unless --tree)."""
    port = free_port()
    name = name or f"mlctl-{processes}"
    env = dict(os.environ, PYTHONPATH=str(tree), WORKER_COUNT=str(processes))
    proc = _started(
        work,
        name,
        [
            sys.executable,
            "-m",
            "mlctl.runtime.server",
            "--entry-script",
            str(HERE / "score.py"),
            "--model-dir",
            str(model_dir),
            "--port",
            str(port),
            "--max-concurrent",
            "1",
        ],
        env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, work / f"{name}.log")
    return [proc], url


def start_bare(work: Path, model_dir: Path) -> Tuple[List[subprocess.Popen], str]:
    """bench/server/bare.py: aiohttp calling run() on its loop (the stack's limit)."""
    port = free_port()
    proc = _started(
        work,
        "bare",
        [
            sys.executable,
            str(HERE / "bare.py"),
            "--entry-script",
            str(HERE / "score.py"),
            "--model-dir",
            str(model_dir),
            "--port",
            str(port),
        ],
        dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, work / "bare.log")
    return [proc], url


def start_azure(work: Path, model_dir: Path, processes: int) -> Tuple[List[subprocess.Popen], str]:
    py = azure_python()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(WORKER_COUNT=str(processes), AML_APP_ROOT=str(work))
    proc = _started(
        work,
        f"azure-{processes}",
        [
            str(py),
            str(HERE / "azure_wrapper.py"),
            "--entry_script",
            str(HERE / "score.py"),
            "--model_dir",
            str(model_dir),
            "--port",
            str(port),
            "--worker_count",
            str(processes),
        ],
        env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, work / f"azure-{processes}.log")
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
    return LoadResult(
        a.concurrency, a.requests + b.requests, a.seconds + b.seconds, a.latencies_ms + b.latencies_ms, errors
    )


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


def row(name: str, r, floor: float, cpu_s: float) -> str:
    per_req = 1000.0 / r.rps if r.rps else float("nan")
    cpu_ms = cpu_s * 1000.0 / r.requests if r.requests else float("nan")
    return (
        f"{r.concurrency:>4} {name:<8} {r.cells()} {per_req:>8.3f} {per_req - floor:>9.3f} {cpu_ms:>8.3f} "
        f"{r.error_cells()}"
    )


HEADER = (
    f"{'conc':>4} {'server':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ms/req':>8} "
    f"{'overhead':>9} {'cpu ms':>8} {'errors':>6}"
)
LABELS = {
    "azure": "azureml-inference-server-http 1.5.1, 1 worker",
    "azure-N": "the same, WORKER_COUNT={n}",
    "mlctl": "mlctl scoring server, 1 process",
    "mlctl-N": "mlctl scoring server, WORKER_COUNT={n}",
    "bare": "bare aiohttp app calling run() on its loop (bench/server/bare.py)",
    "mlctl-tree": "mlctl scoring server from --tree, 1 process",
}


def start(name: str, work: Path, model_dir: Path, n: int, tree: "Path | None") -> Tuple[List[subprocess.Popen], str]:
    if name == "bare":
        return start_bare(work, model_dir)
    if name == "mlctl-tree":
        if tree is None:
            sys.exit("bench: the server mlctl-tree needs --tree DIR")
        return start_mlctl(work, model_dir, 1, tree, name)
    kind, _, count = name.partition("-")
    return (start_azure if kind == "azure" else start_mlctl)(work, model_dir, int(count or 1))


def measure(load: str, url: str, body: bytes, c: int, args) -> "LoadResult | WrkResult":  # type: ignore[name-defined]
    if load == "wrk":
        drive_wrk(url + "/score", body, c, 1)  # warm-up, not counted
        return drive_wrk(url + "/score", body, c, args.seconds)
    drive(url + "/score", body, c, 2000, 1.0, warmup_s=0.0)
    return drive(url + "/score", body, c, args.requests, args.seconds, warmup_s=0.0)


def table(load: str, names: List[str], levels: List[int], pooled: dict, cpu: dict, n: int) -> str:
    """The issue-17 table (markdown): req/s per level and CPU ms per request (range over the levels)."""
    lines = [
        f"| server ({load}) | " + " | ".join(f"c={c} req/s" for c in levels) + " | CPU ms/request |",
        "|---|" + "---:|" * (len(levels) + 1),
    ]
    for name in names:
        rs = [pooled[(load, name, c)] for c in levels]
        cpus = [cpu[(load, name, c)] * 1000.0 / r.requests for r, c in zip(rs, levels) if r.requests]
        label = LABELS[name.replace(f"-{n}", "-N") if name.endswith(f"-{n}") else name].format(n=n)
        lines.append(
            f"| {label} | " + " | ".join(f"{r.rps:,.0f}" for r in rs) + f" | {min(cpus):.2f}–{max(cpus):.2f} |"
        )
    return "\n".join(lines)


def ratios(load: str, names: List[str], levels: List[int], pooled: dict, n: int) -> List[str]:
    """The goals of issue 17 as ratios of req/s in the same run."""
    out = []
    for a, b, goal in (
        ("mlctl", "bare", "goal >= 0.90"),
        ("mlctl-tree", "bare", "--tree"),
        (f"mlctl-{n}", f"azure-{n}", "goal >= 1.8 at 8 and 64"),
        ("mlctl", "azure", ""),
    ):
        if a in names and b in names:
            out.append(
                f"{load}: {a}/{b}: "
                + "   ".join(f"c={c}: {pooled[(load, a, c)].rps / pooled[(load, b, c)].rps:.2f}" for c in levels)
                + (f"   ({goal})" if goal else "")
            )
    return out


def sweep(
    load: str, rnd: int, levels: List[int], procs: dict, body: bytes, floor: float, args, pooled, cpu_total
) -> None:  # type: ignore[no-untyped-def]
    """One round of one load generator: every level, the servers in turn; pools into `pooled` / `cpu_total`."""
    print(f"\nround {rnd}/{args.rounds}, load {load}, load average {os.getloadavg()[0]:.2f}\n{HEADER}")
    for c in levels:
        for name, (group, url) in procs.items():
            cpu0 = sum(group_cpu_s(pr.pid) for pr in group)
            r = measure(load, url, body, c, args)
            cpu = sum(group_cpu_s(pr.pid) for pr in group) - cpu0
            print(row(name, r, floor, cpu), flush=True)
            key = (load, name, c)
            pooled[key] = (
                r if key not in pooled else (pooled[key].merged(r) if load == "wrk" else merge(pooled[key], r))
            )
            cpu_total[key] = cpu_total.get(key, 0.0) + cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0, help="time per level, server and round")
    p.add_argument("--requests", type=int, default=100000, help="request limit per level and server (python load)")
    p.add_argument("--levels", default="1,8,64")
    p.add_argument("--rounds", type=int, default=2, help="repeat all levels; figures are pooled over rounds")
    p.add_argument("--processes", type=int, default=2, help="N of the azure-N and mlctl-N servers (WORKER_COUNT)")
    p.add_argument("--servers", default=None, help="comma-separated (default azure,azure-N,mlctl,mlctl-N,bare)")
    p.add_argument("--load", choices=["wrk", "python", "both"], default="wrk")
    p.add_argument("--busy", type=int, default=0, help="CPU-bound processes running beside the servers (default 0)")
    p.add_argument(
        "--tree",
        type=Path,
        default=None,
        help="another mlctl source tree (e.g. `git archive COMMIT mlctl | tar -x -C DIR`): server mlctl-tree runs it",
    )
    p.add_argument("--logs", type=Path, default=None, help="copy the servers' logs into this folder at the end")
    args = p.parse_args()
    n = args.processes
    levels = [int(x) for x in args.levels.split(",")]
    names = (args.servers or f"azure,azure-{n},mlctl,mlctl-{n},bare").split(",")
    loads = ["wrk", "python"] if args.load == "both" else [args.load]
    if "wrk" in loads and wrk_binary() is None:
        sys.exit("bench: wrk is not installed (Debian: apt-get install wrk); or use --load python")
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-") as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        model_dir.mkdir()
        body = json.dumps({"data": train(model_dir)}).encode()
        floor = floor_ms(model_dir, body.decode())
        print(
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.2f}; "
            f"{os.cpu_count()} cores"
        )
        print(f"run() alone (floor): {floor:.3f} ms/call = {1000.0 / floor:.0f} calls/s on one core")
        procs: Dict[str, Tuple[List[subprocess.Popen], str]] = {}
        try:
            for name in names:
                procs[name] = start(name, work, model_dir, n, args.tree)
            pooled: dict = {}
            cpu_total: dict = {}
            bound = 2 * args.rounds * len(loads) * len(levels) * len(procs) * (args.seconds + 1.0) + 600.0
            with neighbours(args.busy, bound):
                if args.busy:
                    print(f"\n{args.busy} CPU-bound process(es) running beside the servers (bench/server/busy.py)")
                for rnd in range(1, args.rounds + 1):
                    for load in loads:
                        sweep(load, rnd, levels, procs, body, floor, args, pooled, cpu_total)
            for load in loads:
                print(f"\nall {args.rounds} round(s) pooled, load {load}\n{HEADER}")
                for c in levels:
                    for name in procs:
                        print(row(name, pooled[(load, name, c)], floor, cpu_total[(load, name, c)]))
                print()
                print(table(load, names, levels, pooled, cpu_total, n))
                print()
                print("\n".join(ratios(load, names, levels, pooled, n)))
            print(f"\nload average at the end {os.getloadavg()[0]:.2f}; busy neighbours: {args.busy}")
        finally:
            for group, _ in procs.values():
                for proc in group:
                    stop(proc)
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in work.glob("*.log"):
                    shutil.copy(log, args.logs / log.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
