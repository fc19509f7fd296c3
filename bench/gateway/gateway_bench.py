"""Gateway benchmark: through the endpoint host vs straight to its instance vs azureml-inference-server-http.

Same score.py and model as bench/server (scikit-learn diabetes Ridge, 2-row body), one scoring
process each; the host runs one instance with max_concurrent_requests_per_instance 64 (limit 128,
so no answer is a 429), and the "direct" column calls that very instance on its unix socket.
Closed-loop aiohttp load (keep-alive; bench/server/load.py) at concurrency 1/8/64, levels alternating
between targets, the sweep repeated --rounds times and pooled (background load hits all alike).
Columns: req/s, p50/p99, cpu ms = CPU per request of the target's processes (host: gateway +
instance; read from /proc), gw ms = the gateway's share, errors = non-200 answers + client errors.
Run on demand (not in CI):

    python3 bench/gateway/gateway_bench.py [--seconds 6] [--requests 20000] [--levels 1,8,64] [--rounds 3]
                                           [--no-azure] [--bare] [--tcp] [--nginx] [--baseline TREE]

--bare adds bare_proxy.py (the same hop without the gateway's features) for reference.
--tcp adds "tcp": a second scoring server started with the instance's very command line but on a
TCP port instead of the unix socket, so client -> server goes over the same transport as client ->
gateway (how much of host/direct is the client's TCP rather than the gateway).
--baseline TREE adds "base": a second endpoint host started from another source tree (a folder holding an
`mlctl` package, such as `git worktree add /tmp/base main`), with the same deployment, so a change to the
host is measured before (base) and after (host) in one run: the ratio host/base is printed.
--nginx adds "nginx": nginx (the Debian package; one worker, keep-alive to the instance's socket, the
same key check, an x-request-id, no access log), i.e. the same hop made by a compiled proxy: what
a hop costs when the proxy's own CPU is small.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "server"))
from load import JSON, LoadResult, drive, unix_connector
from wrk import drive_wrk, wrk_binary


def _server_bench():
    """bench/server/bench.py (training, the Azure server's start and stop), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("server_bench", ROOT / "bench" / "server" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


server_bench = _server_bench()
start_azure, stop, train = server_bench.start_azure, server_bench.stop, server_bench.train
group_cpu_s, merge = server_bench.group_cpu_s, server_bench.merge
free_port, wait_ready = server_bench.free_port, server_bench.wait_ready

from mlctl.runtime.host import secrets
from mlctl.runtime.host.client import HostClient, start_host


def start_bare(socket_path: str, key: str):
    """bare_proxy.py on the instance's socket: (process, port). The key goes on stdin, not argv."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "bare_proxy.py"), socket_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    proc.stdin.write(key + "\n")
    proc.stdin.close()
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        stop(proc)
        raise RuntimeError("bare_proxy.py did not start")
    return proc, int(port)


NGINX_CONF = """daemon off;
user root;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  upstream instance {{ server unix:{socket}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location = /score {{
      if ($http_authorization != "Bearer {key}") {{ return 401; }}
      proxy_pass http://instance;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header x-request-id $request_id;
    }}
  }}
}}
"""


def nginx_program() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def start_nginx(work: Path, nginx: str, socket_path: str, key: str) -> tuple[subprocess.Popen, int]:
    """nginx in front of the instance's socket (config in the bench's temporary folder): (process, port)."""
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, socket=socket_path, port=port, key=key))
    conf.chmod(0o600)
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"nginx exited {proc.returncode}: {(work / 'nginx-error.log').read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise SystemExit("nginx did not listen within 10 s")


def start_tcp(work: Path, instance_command: list) -> tuple[subprocess.Popen, str]:
    """The instance's command line with --unix-socket PATH replaced by --port N: (process, base URL)."""
    cmd = list(instance_command)
    at = cmd.index("--unix-socket")
    port = free_port()
    cmd[at : at + 2] = ["--port", str(port)]
    log = work / "tcp-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, log)
    return proc, url


def start_baseline(tree: Path, data_dir: Path, deployment: dict):
    """An endpoint host started from the mlctl package in `tree` (its own code throughout: host and instance),
    serving `deployment` with all traffic: (HostInfo, HostClient, key)."""
    from mlctl.runtime.host.client import find_host

    start = f"import sys; sys.path.insert(0, {str(tree)!r}); from mlctl.runtime.host.client import start_host; "
    start += f"start_host({str(data_dir)!r}, 'base', auth_mode='key', port=None)"
    subprocess.run([sys.executable, "-c", start], check=True, env=dict(os.environ, PYTHONPATH=str(tree)), timeout=60)
    info = find_host(data_dir, "base")
    client = HostClient(info)
    client.create_deployment(deployment, timeout=120)
    client.set_traffic({deployment["name"]: 100})
    return info, client, secrets.read_keys(data_dir, "base")["primary"]


def measure(url: str, body: bytes, headers: dict, connector, concurrency: int, args) -> LoadResult:
    """One level against one target, measured (the warm-up is a separate `warm` call: no CPU counted)."""
    if args.load == "wrk":
        return drive_wrk(url, body, concurrency, args.seconds, headers)
    return drive(
        url, body, concurrency, args.requests, args.seconds, warmup_s=0.0, headers=headers, connector=connector
    )


def warm(url: str, body: bytes, headers: dict, connector, concurrency: int, load: str = "python") -> None:
    """Connections opened, caches warm: 1 s (or 2,000 requests) before a measured level."""
    if load == "wrk":
        drive_wrk(url, body, concurrency, 1, headers)
        return
    drive(url, body, concurrency, 2000, 1.0, warmup_s=0.0, headers=headers, connector=connector)


def row(name: str, c: int, r: LoadResult, cpu_ms: list) -> str:
    gateway = f"{cpu_ms[0]:>6.3f}" if name in ("host", "base", "bare", "nginx") else f"{'':>6}"
    return f"{c:>4} {name:<7} {r.cells()} {sum(cpu_ms):>7.3f} {gateway} {r.error_cells()}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=6.0, help="time limit per level, target and round")
    p.add_argument("--requests", type=int, default=20000, help="request limit per level, target and round")
    p.add_argument("--levels", default="1,8,64")
    p.add_argument("--rounds", type=int, default=3, help="repeat the sweep; figures are pooled over rounds")
    p.add_argument("--no-azure", action="store_true", help="skip azureml-inference-server-http")
    p.add_argument(
        "--bare",
        action="store_true",
        help="also measure bare_proxy.py (the hop without the gateway's features), for reference",
    )
    p.add_argument(
        "--tcp",
        action="store_true",
        help="also measure the instance's scoring server started on a TCP port, for reference",
    )
    p.add_argument(
        "--nginx",
        action="store_true",
        help="also measure nginx (Debian package) forwarding to the instance, for reference",
    )
    p.add_argument(
        "--load",
        choices=["python", "wrk"],
        default="python",
        help="load generator: load.py (aiohttp) or wrk (compiled; cannot reach the instance's unix "
        "socket, so `direct` is left out: add --tcp for the instance's server on TCP)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="also measure an endpoint host started from this source tree (before/after a change, in one run)",
    )
    args = p.parse_args()
    if args.load == "wrk" and wrk_binary() is None:
        p.error("--load wrk needs wrk (Debian: apt-get install wrk)")
    if args.nginx and nginx_program() is None:
        p.error("--nginx needs nginx (apt-get install nginx-light); it is not a dependency of mlctl")
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="mlctl-gwbench-") as tmp:
        work = Path(tmp)
        (work / "model").mkdir()
        body = json.dumps({"data": train(work / "model")}).encode()
        info = start_host(work / "data", "bench", auth_mode="key", port=None)
        client = HostClient(info)
        azure, bare, tcp, nginx, base = [], None, None, None, None
        deployment = {
            "name": "blue",
            "digest": "sha256:bench",
            "python": sys.executable,
            "code_dir": str(ROOT / "bench" / "server"),
            "scoring_script": "score.py",
            "model_dir": str(work / "model"),
            "instance_count": 1,
            "request_settings": {"request_timeout_ms": 30000, "max_concurrent_requests_per_instance": 64},
        }
        try:
            client.create_deployment(deployment, timeout=120)
            client.set_traffic({"blue": 100})
            instance = client.status()["deployments"]["blue"]["instances"][0]
            key = secrets.read_keys(work / "data", "bench")["primary"]
            auth = {**JSON, "Authorization": f"Bearer {key}"}
            # name -> (url, headers, connector factory, process groups whose CPU is the target's cost)
            targets = {
                "host": (f"http://127.0.0.1:{info.port}/score", auth, None, [info.pid, instance["pid"]]),
            }
            if args.load == "python":
                targets["direct"] = (
                    "http://instance/score",
                    JSON,
                    unix_connector(instance["socket"]),
                    [instance["pid"]],
                )
            if args.bare:
                bare = start_bare(instance["socket"], key)
                targets["bare"] = (f"http://127.0.0.1:{bare[1]}/score", auth, None, [bare[0].pid, instance["pid"]])
            if args.tcp:
                cmdline = Path(f"/proc/{instance['pid']}/cmdline").read_bytes().decode().split("\0")[:-1]
                tcp, url = start_tcp(work, cmdline)
                targets["tcp"] = (url + "/score", JSON, None, [tcp.pid])
            if args.baseline:
                base = start_baseline(args.baseline.resolve(), work / "base-data", deployment)
                base_instance = base[1].status()["deployments"]["blue"]["instances"][0]
                targets["base"] = (
                    f"http://127.0.0.1:{base[0].port}/score",
                    {**JSON, "Authorization": f"Bearer {base[2]}"},
                    None,
                    [base[0].pid, base_instance["pid"]],
                )
            if args.nginx:
                nginx = start_nginx(work, nginx_program(), instance["socket"], key)
                targets["nginx"] = (f"http://127.0.0.1:{nginx[1]}/score", auth, None, [nginx[0].pid, instance["pid"]])
            if not args.no_azure:
                azure, url = start_azure(work, work / "model", 1)
                targets["azure"] = (url + "/score", JSON, None, [proc.pid for proc in azure])
            header = (
                f"{'conc':>4} {'target':<7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>7} "
                f"{'gw ms':>6} {'errors':>6}"
            )
            pooled, cpu_s, ratios = {}, {}, {c: [] for c in levels}
            print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores: other work skews every figure)")
            for rnd in range(1, args.rounds + 1):
                print(f"\nround {rnd}/{args.rounds}\n{header}", flush=True)
                for c in levels:
                    rps = {}
                    order = list(targets) if rnd % 2 else list(reversed(targets))  # cancels drift within a level
                    for name in order:
                        url, headers, connector, groups = targets[name]
                        warm(url, body, headers, connector, c, args.load)
                        cpu0 = [group_cpu_s(g) for g in groups]
                        r = measure(url, body, headers, connector, c, args)
                        cpu = [group_cpu_s(g) - c0 for g, c0 in zip(groups, cpu0)]
                        print(row(name, c, r, [x * 1000 / max(1, r.requests) for x in cpu]), flush=True)
                        rps[name] = r.rps
                        before = pooled.get((name, c))
                        pooled[(name, c)] = (
                            (r if before is None else before.merged(r)) if args.load == "wrk" else merge(before, r)
                        )
                        cpu_s[(name, c)] = [a + b for a, b in zip(cpu_s.get((name, c), [0.0] * len(cpu)), cpu)]
                    if "direct" in rps:
                        ratios[c].append(rps["host"] / rps["direct"])
            print(f"\nall {args.rounds} round(s) pooled\n{header}")
            for c in levels:
                for name in targets:
                    r = pooled[(name, c)]
                    print(row(name, c, r, [x * 1000 / max(1, r.requests) for x in cpu_s[(name, c)]]))
            if "direct" in targets:
                print(
                    "\nhost/direct (req/s): "
                    + "   ".join(f"c={c}: {pooled[('host', c)].rps / pooled[('direct', c)].rps:.2f}" for c in levels)
                )
                print(
                    "per round:           "
                    + "   ".join(f"c={c}: " + "/".join(f"{x:.2f}" for x in ratios[c]) for c in levels)
                )
                print(
                    "median of rounds:    " + "   ".join(f"c={c}: {statistics.median(ratios[c]):.2f}" for c in levels)
                )
            print(f"load average at end: {os.getloadavg()[0]:.2f}")
            if "tcp" in targets:
                print(
                    "host/tcp    (req/s): "
                    + "   ".join(f"c={c}: {pooled[('host', c)].rps / pooled[('tcp', c)].rps:.2f}" for c in levels)
                )
                if "direct" in targets:
                    print(
                        "tcp/direct  (req/s): "
                        + "   ".join(f"c={c}: {pooled[('tcp', c)].rps / pooled[('direct', c)].rps:.2f}" for c in levels)
                    )
            if "nginx" in targets and "direct" in targets:
                print(
                    "nginx/direct(req/s): "
                    + "   ".join(f"c={c}: {pooled[('nginx', c)].rps / pooled[('direct', c)].rps:.2f}" for c in levels)
                )
            if "bare" in targets and "direct" in targets:
                print(
                    "bare/direct (req/s): "
                    + "   ".join(f"c={c}: {pooled[('bare', c)].rps / pooled[('direct', c)].rps:.2f}" for c in levels)
                )
            if "base" in targets:
                print(
                    "host/base   (req/s): "
                    + "   ".join(f"c={c}: {pooled[('host', c)].rps / pooled[('base', c)].rps:.2f}" for c in levels)
                )
            if "azure" in targets:
                print(
                    "host/azure  (req/s): "
                    + "   ".join(f"c={c}: {pooled[('host', c)].rps / pooled[('azure', c)].rps:.2f}" for c in levels)
                )
        finally:
            try:
                others = ([bare[0]] if bare else []) + ([tcp] if tcp else []) + ([nginx[0]] if nginx else [])
                for proc in azure + others:
                    stop(proc)
            finally:
                client.shutdown()  # the host and its instance go even if stopping Azure failed
                if base is not None:
                    base[1].shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
