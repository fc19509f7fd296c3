"""Gateway benchmark: through the endpoint host vs straight to its instance vs azureml-inference-server-http.

Same score.py and model as bench/server (scikit-learn diabetes Ridge, 2-row body), one scoring
process each; the host runs one instance with max_concurrent_requests_per_instance 64 (limit 128,
so no answer is a 429), and the "direct" column calls that very instance on its unix socket.
Closed-loop aiohttp load (keep-alive) at concurrency 1/8/64, levels alternating between targets.
Columns: req/s, p50/p99, cpu ms = CPU per request of the target's processes (host: gateway +
instance; read from /proc), gw ms = the gateway's share, errors = non-200 answers + client errors.
Run on demand (not in CI):

    python3 bench/gateway/gateway_bench.py [--seconds 6] [--requests 20000] [--levels 1,8,64] [--no-azure]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "server"))
from load import LoadResult  # noqa: E402  (bench/server/load.py)


def _server_bench():
    """bench/server/bench.py (training, the Azure server's start and stop), loaded by path."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("server_bench", ROOT / "bench" / "server" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


server_bench = _server_bench()
start_azure, stop, train = server_bench.start_azure, server_bench.stop, server_bench.train
group_cpu_s = server_bench.group_cpu_s

from mlctl.runtime.local import secrets  # noqa: E402
from mlctl.runtime.local.hostclient import start_host  # noqa: E402


async def _load(session_factory, url: str, body: bytes, headers: dict, concurrency: int, max_requests: int,
                max_seconds: float, warmup_s: float = 1.0) -> LoadResult:
    latencies, errors = [], {}
    async with session_factory(concurrency) as session:
        async def one(record: bool) -> None:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
                    if not ok:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                ok = False
            if ok and record:
                latencies.append((time.perf_counter() - t0) * 1000.0)

        warm_end = time.perf_counter() + warmup_s

        async def warm() -> None:
            while time.perf_counter() < warm_end:
                await one(False)

        await asyncio.gather(*(warm() for _ in range(concurrency)))
        errors.clear()
        issued = 0
        start = time.perf_counter()
        deadline = start + max_seconds

        async def worker() -> None:
            nonlocal issued
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                await one(True)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return LoadResult(concurrency, len(latencies) + sum(errors.values()), seconds, latencies, errors)


def tcp_sessions(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                 timeout=aiohttp.ClientTimeout(total=30))


def unix_sessions(path: str):
    return lambda concurrency: aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=path, limit=concurrency), timeout=aiohttp.ClientTimeout(total=30))


def measure(factory, url, body, headers, concurrency, args) -> LoadResult:
    coro = _load(factory, url, body, headers, concurrency, args.requests, args.seconds)
    try:
        import uvloop
        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=6.0, help="time limit per level and target")
    p.add_argument("--requests", type=int, default=20000, help="request limit per level and target")
    p.add_argument("--levels", default="1,8,64")
    p.add_argument("--no-azure", action="store_true", help="skip azureml-inference-server-http")
    args = p.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="mlctl-gwbench-") as tmp:
        work = Path(tmp)
        (work / "model").mkdir()
        body = json.dumps({"data": train(work / "model")}).encode()
        info = start_host(work / "data", "bench", auth_mode="key", port=None)
        from mlctl.runtime.local.hostclient import HostClient
        client = HostClient(info)
        azure = None
        try:
            client.put_deployment({
                "name": "blue", "digest": "sha256:bench", "python": sys.executable,
                "code_dir": str(ROOT / "bench" / "server"), "scoring_script": "score.py",
                "model_dir": str(work / "model"), "instance_count": 1,
                "request_settings": {"request_timeout_ms": 30000, "max_concurrent_requests_per_instance": 64}},
                timeout=120)
            client.set_traffic({"blue": 100})
            instance = client.status()["deployments"]["blue"]["instances"][0]
            sock = instance["socket"]
            key = secrets.read_keys(work / "data", "bench")["primary"]
            json_ct = {"Content-Type": "application/json"}
            auth = {**json_ct, "Authorization": f"Bearer {key}"}
            # (session factory, url, headers, process groups whose CPU is the target's cost)
            targets = {
                "host": (tcp_sessions, f"http://127.0.0.1:{info.port}/score", auth, [info.pid, instance["pid"]]),
                "direct": (unix_sessions(sock), "http://instance/score", json_ct, [instance["pid"]]),
            }
            if not args.no_azure:
                azure, url = start_azure(work, work / "model", 1)
                targets["azure"] = (tcp_sessions, url + "/score", json_ct, [azure.pid])
            results = {}
            print(f"{'conc':>4} {'target':<7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>7} {'gw ms':>6} "
                  f"{'errors':>6}")
            for c in levels:
                for name, (factory, url, headers, groups) in targets.items():
                    cpu0 = [group_cpu_s(g) for g in groups]
                    r = results[(name, c)] = measure(factory, url, body, headers, c, args)
                    cpu = [(group_cpu_s(g) - c0) * 1000 / max(1, r.requests) for g, c0 in zip(groups, cpu0)]
                    gateway = f"{cpu[0]:>6.3f}" if name == "host" else f"{'':>6}"
                    errs = sum(r.errors.values())
                    print(f"{c:>4} {name:<7} {r.rps:>9.0f} {r.percentile(50):>8.2f} {r.percentile(99):>8.2f} "
                          f"{sum(cpu):>7.3f} {gateway} {errs:>6}{' ' + json.dumps(r.errors) if errs else ''}",
                          flush=True)
            print("\nhost/direct (req/s): " + "   ".join(
                f"c={c}: {results[('host', c)].rps / results[('direct', c)].rps:.2f}" for c in levels))
            if "azure" in targets:
                print("host/azure  (req/s): " + "   ".join(
                    f"c={c}: {results[('host', c)].rps / results[('azure', c)].rps:.2f}" for c in levels))
        finally:
            if azure is not None:
                stop(azure)
            client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
