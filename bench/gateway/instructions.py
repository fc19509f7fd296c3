"""Instructions per request of the endpoint host (the gateway process alone), counted by valgrind (callgrind),
for one or more source trees in one run: a before/after figure that the load of a shared machine does not move.

Each tree's host (`python -m mlctl.runtime.host` with that tree's `mlctl` on PYTHONPATH) runs under
`valgrind --tool=callgrind` and serves one instance of bench/server's Ridge score.py (the instance is not
traced). Per concurrency level: warm up, zero the counters, send --requests requests with a key (aiohttp,
outside valgrind), dump, and divide. Run on demand (slow: valgrind runs Python ~50x slower):

    python3 bench/gateway/instructions.py --tree /tmp/base --tree . [--levels 1,8] [--requests 1000]

A tree is a folder holding an `mlctl` package, e.g. `git worktree add /tmp/base b51b707`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "server"))
from bench import stop, train  # noqa: E402
from instructions import _control, _total  # noqa: E402
from load import JSON, drive  # noqa: E402

from mlctl.runtime.host import secrets  # noqa: E402
from mlctl.runtime.host.client import HostClient, find_host  # noqa: E402


# An editable install's import hook wins over PYTHONPATH: it is taken out, then the tree's mlctl is run.
FROM_TREE = (
    "import runpy, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
    "sys.path.insert(0, {tree!r})\n"
    "import mlctl\n"
    "assert mlctl.__file__.startswith({tree!r}), mlctl.__file__\n"
    "runpy.run_module('mlctl.runtime.host', run_name='__main__', alter_sys=True)\n"
)


def start_traced_host(tree: Path, data_dir: Path, out: Path, log: Path) -> subprocess.Popen:
    """The endpoint host of `tree` under callgrind, its counters dumped to `out`.PID files."""
    return subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}.%p",
            "--dump-line=no",
            sys.executable,
            "-c",
            FROM_TREE.format(tree=str(tree)),
            "--data-dir",
            str(data_dir),
            "--endpoint",
            "bench",
            "--auth-mode",
            "key",
        ],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=data_dir.parent,
        start_new_session=True,
    )


def count(tree: Path, work: Path, body: bytes, model: Path, levels: list[int], requests: int) -> dict[int, float]:
    """{concurrency: host instructions per request} for the host of `tree`."""
    data_dir, out, log = work / "data", work / "callgrind.out", work / "host.log"
    data_dir.mkdir()
    secrets.ensure_keys(data_dir, "bench")  # what start_host does before it starts a host
    proc = start_traced_host(tree, data_dir, out, log)
    try:
        end = time.monotonic() + 600
        info = None
        while info is None:
            info = find_host(data_dir, "bench")
            if proc.poll() is not None or time.monotonic() > end:
                raise SystemExit(f"{tree}: the host did not start:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        client = HostClient(info)
        deployment = {
            "name": "blue",
            "digest": "sha256:bench",
            "python": sys.executable,
            "code_dir": str(ROOT / "bench" / "server"),
            "scoring_script": "score.py",
            "model_dir": str(model),
            "instance_count": 1,
            "request_settings": {"request_timeout_ms": 60000, "max_concurrent_requests_per_instance": 64},
        }
        client.create_deployment(deployment, timeout=600)
        client.set_traffic({"blue": 100})
        url = f"http://127.0.0.1:{info.port}/score"
        headers = {**JSON, "Authorization": f"Bearer {secrets.read_keys(data_dir, 'bench')['primary']}"}
        figures = {}
        for c in levels:
            warm = drive(url, body, c, 200, 300.0, warmup_s=0.0, headers=headers)
            if warm.errors:
                raise SystemExit(f"{tree}: {warm.errors} errors while warming up at c={c}")
            for f in work.glob("callgrind.out.*"):
                f.unlink()
            _control("-z", str(proc.pid))
            r = drive(url, body, c, requests, 900.0, warmup_s=0.0, headers=headers)
            _control("-d", str(proc.pid))
            total = sum(_total(f) for f in work.glob("callgrind.out.*"))
            figures[c] = total / max(r.requests, 1)
            print(
                f"{tree} c={c}: {figures[c]:,.0f} instructions/request ({r.requests} requests, errors {r.errors or 0})"
            )
        return figures
    finally:
        stop(proc)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", type=Path, action="append", required=True, help="a source tree (repeatable)")
    p.add_argument("--levels", default="1,8")
    p.add_argument("--requests", type=int, default=1000)
    args = p.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    print(f"load average at start: {os.getloadavg()} (instruction counts do not move with it)")
    with tempfile.TemporaryDirectory(prefix="mlctl-gw-callgrind-") as tmp:
        work = Path(tmp)
        (work / "model").mkdir()
        body = json.dumps({"data": train(work / "model")}).encode()
        results = []  # (tree, figures): a tree given twice is measured twice (the noise of the count)
        for i, tree in enumerate(args.tree):
            (work / str(i)).mkdir()
            results.append((tree, count(tree.resolve(), work / str(i), body, work / "model", levels, args.requests)))
    first = results[0][1]
    print("\n| tree | " + " | ".join(f"c={c} (ratio to the first)" for c in levels) + " |")
    print("|---|" + "---:|" * len(levels))
    for tree, figures in results:
        cells = [f"{figures[c]:,.0f} ({figures[c] / first[c]:.3f})" for c in levels]
        print(f"| {tree} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
