"""Instructions per request of one scoring-server process, counted by valgrind (callgrind): a figure that
does not move with the load of a shared machine, to compare the steps of a speed change.

Starts the server (or bench/server/bare.py) under `valgrind --tool=callgrind` with a trivial run()
(the server's own cost, not the model's) or the benchmark's Ridge, warms it up, zeroes the counters,
sends --requests requests at each concurrency with the aiohttp client (outside valgrind), dumps the
counters and prints instructions per request; `--top N` also prints the N functions with the most
inclusive instructions (callgrind_annotate). Run on demand (slow: valgrind runs Python ~50x slower):

    python3 bench/server/instructions.py [--server mlctl|bare] [--levels 1,8,64] [--requests 2000] [--ridge] [--top 25]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from bench import free_port, stop, train  # noqa: E402
from load import drive  # noqa: E402

TRIVIAL = "def init():\n    pass\n\n\ndef run(raw_data):\n    return {'ok': 1}\n"


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=300)


def _total(path: Path) -> int:
    m = re.search(r"^(?:summary|totals):\s+(\d+)", path.read_text(errors="replace"), re.M)
    return int(m.group(1)) if m else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", choices=["mlctl", "bare"], default="mlctl")
    p.add_argument("--levels", default="1,8,64")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--ridge", action="store_true", help="the benchmark's Ridge score.py instead of a trivial run()")
    p.add_argument("--top", type=int, default=0)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlctl-callgrind-") as tmp:
        work = Path(tmp)
        (work / "model").mkdir()
        if args.ridge:
            script, body = HERE / "score.py", json.dumps({"data": train(work / "model")}).encode()
        else:
            script, body = work / "score.py", b'{"data": [[1, 2]]}'
            script.write_text(TRIVIAL)
        port = free_port()
        server = (
            [sys.executable, "-m", "mlctl.runtime.server", "--port", str(port)]
            if args.server == "mlctl"
            else [sys.executable, str(HERE / "bare.py"), "--port", str(port)]
        )
        out = work / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(ROOT), **dict(e.split("=", 1) for e in args.env)}
        log = open(work / "server.log", "wb")
        proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}.%p",
                "--dump-line=no",
                *server,
                "--entry-script",
                str(script),
                "--model-dir",
                str(work / "model"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}/score"
        try:
            end = time.monotonic() + 600
            while drive(url, body, 1, 20, 30.0, warmup_s=0.0).errors:  # until it answers
                if proc.poll() is not None or time.monotonic() > end:
                    raise SystemExit((work / "server.log").read_text()[-3000:])
                time.sleep(1)
            for c in [int(x) for x in args.levels.split(",")]:
                drive(url, body, c, 300, 60.0, warmup_s=0.0)  # warm
                for f in work.glob("callgrind.out.*"):
                    f.unlink()
                _control("-z", str(proc.pid))
                r = drive(url, body, c, args.requests, 600.0, warmup_s=0.0)
                _control("-d", str(proc.pid))
                dumps = sorted(work.glob("callgrind.out.*"))
                total = sum(_total(f) for f in dumps)
                print(
                    f"{args.server} c={c}: {total / r.requests:,.0f} instructions/request "
                    f"({r.requests} requests, errors {r.errors or 0})",
                    flush=True,
                )
                if args.top and dumps:
                    ann = subprocess.run(
                        ["callgrind_annotate", "--inclusive=yes", str(dumps[-1])],
                        capture_output=True,
                        text=True,
                        check=False,
                    ).stdout
                    print("\n".join(ann.splitlines()[: args.top + 20]))
        finally:
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
