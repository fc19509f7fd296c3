"""How long the ray tests' cluster takes to notice a dead node: the worker node killed by PID (SIGKILL of its
namespace's processes) N times, each time the seconds until the GCS no longer holds it alive, then started again.
The three machines of tests/ray/raymachines.py with their health-check settings (HEALTH); as root.

    python bench/ray/nodedeath.py [--rounds 3]

Prints the settings, each round's figure and the load average (`uptime`) before and after. Not run by CI.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "ray")]

from raymachines import HEALTH, RayMachines  # noqa: E402


# the GCS's record of when it marked a node dead (its end_time_ms), asked from the client machine
ENDED = """
import sys
from ray._raylet import GcsClient
from ray.core.generated.gcs_pb2 import GcsNodeInfo

infos = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=30, state_filter=GcsNodeInfo.GcsNodeState.DEAD)
print(next(i.end_time_ms for i in infos.values() if i.node_id.hex() == sys.argv[2]))
"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cache = Path(os.environ.get("MLCTL_CACHE") or tempfile.mkdtemp(prefix="mlctl-bench-cache-"))
    print(" ".join(f"{k}={v}" for k, v in HEALTH.items()))
    print("before:", uptime(), flush=True)
    started = time.monotonic()
    machines = RayMachines.start(cache)
    print(f"cluster started in {time.monotonic() - started:.1f} s", flush=True)
    try:
        worker = machines.worker
        for r in range(args.rounds):
            node_id = worker.node_id()
            worker.kill()
            killed = time.time()
            machines.wait_nodes(lambda n: worker.address not in n, 120, "the GCS marks the killed node dead")
            ended = machines.client.run([sys.executable, "-c", ENDED, machines.address, node_id], env=machines.env)
            took = int(ended.stdout.strip()) / 1000 - killed
            print(f"round {r + 1}: marked dead by the GCS {took:.1f} s after the kill", flush=True)
            worker.start()
    finally:
        machines.stop()
    print("after:", uptime())


if __name__ == "__main__":
    main()
