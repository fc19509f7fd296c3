"""Benchmark (on demand): how long a scoring instance of the diabetes example takes to exit after
SIGTERM, which a rollout waits for while the old instance stops. Side by side, alternating, in one
run: the server's entry point (`python -m mlctl.runtime.server`: exit without module teardown)
against the same server ended by a plain `sys.exit(main())` (full interpreter teardown).

    python bench/rollout/stop.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"
ENTRIES = {
    "mlctl entry (exit without teardown)": ["-m", "mlctl.runtime.server"],
    "sys.exit(main()) (full teardown)": [
        "-c",
        "import sys; from mlctl.runtime.server.startup import main; sys.exit(main())",
    ],
}


def stop_time(entry: list[str], model_dir: Path, sock: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            *entry,
            "--entry-script",
            str(EXAMPLE / "onlinescoring" / "score.py"),
            "--model-dir",
            str(model_dir),
            "--unix-socket",
            str(sock),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start ({' '.join(entry)})")
            time.sleep(0.01)
        start = time.perf_counter()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        return time.perf_counter() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlctl-stop-") as tmp:
        model_dir = Path(tmp) / "models"
        subprocess.run(
            [sys.executable, str(EXAMPLE / "train.py"), str(model_dir / "model")], check=True, capture_output=True
        )
        times: dict[str, list[float]] = {name: [] for name in ENTRIES}
        for r in range(args.rounds):
            for name, entry in ENTRIES.items():
                times[name].append(stop_time(entry, model_dir, Path(tmp) / f"s{r}.sock"))
    result = {
        name: {"median_s": round(statistics.median(t), 3), "all": [round(x, 3) for x in t]} for name, t in times.items()
    }
    a, b = (statistics.median(t) for t in times.values())
    result["ratio"] = round(b / a, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
