"""TLS benchmark (issue 27): an endpoint host serving HTTPS vs the same endpoint serving plain HTTP, in one run.

Two endpoint hosts on 127.0.0.1 with the same deployment (bench/server/score.py, the diabetes Ridge, a
2-row body; one instance, max_concurrent_requests_per_instance 64, uvloop and orjson as installed), one
with `listen.certificate`/`key` (a trustme test CA's certificate, ECDSA P-256 as trustme makes), one without.

1. Keep-alive scoring: closed-loop aiohttp load (bench/server/load.py) at concurrency 1/8/64, levels
   alternating between the two, the sweep repeated --rounds times and pooled; req/s, p50/p99, CPU ms per
   request of the host + instance process groups, and tls/plain req/s per level (goal: >= 0.85 at c=8).
2. New connections per second: --clients processes each open a connection, send one GET / (with the key),
   read the answer and close, for --seconds: plain TCP, TLS with a full handshake each time, and TLS
   resuming the last session (TLS 1.3 tickets). The fraction of resumed handshakes is printed.

The load generator runs on the same 2 cores and pays for its own TLS too: figures are ratios within one run.
`--load python` (the default) is aiohttp's client, whose TLS in Python costs about as much CPU as the endpoint's;
`--load wrk` is the compiled `wrk` (Debian package `wrk`, one thread, OpenSSL), closer to what a client on another
machine costs the endpoint's cores (nothing), so its ratio says more about the endpoint. Run on demand (not in CI):

    .venv/bin/python bench/tls/tls_bench.py [--seconds 5] [--requests 20000] [--levels 1,8,64] [--rounds 2]
                                            [--clients 2] [--load python|wrk]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import trustme

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "gateway"))
sys.path.insert(0, str(ROOT / "bench" / "server"))
from gateway_bench import group_cpu_s, merge, train  # noqa: E402
from load import JSON, drive  # noqa: E402
from wrk import drive_wrk, wrk_binary  # noqa: E402

from mlctl.runtime.host import secrets  # noqa: E402
from mlctl.runtime.host.client import HostClient, start_host  # noqa: E402


def deployment(model_dir: Path) -> dict:
    return {
        "name": "blue",
        "digest": "sha256:bench",
        "python": sys.executable,
        "code_dir": str(ROOT / "bench" / "server"),
        "scoring_script": "score.py",
        "model_dir": str(model_dir),
        "instance_count": 1,
        "request_settings": {"request_timeout_ms": 30000, "max_concurrent_requests_per_instance": 64},
    }


def start(work: Path, name: str, listen: dict | None) -> tuple[HostClient, dict, str]:
    """An endpoint host with the bench deployment at 100%: (client, its info fields, its key)."""
    info = start_host(work / "data", name, auth_mode="key", port=None, listen=listen)
    client = HostClient(info)
    client.create_deployment(deployment(work / "model"), timeout=120)
    client.set_traffic({"blue": 100})
    instance = client.status()["deployments"]["blue"]["instances"][0]
    target = {"port": info.port, "url": f"{info.base_url}/score", "groups": [info.pid, instance["pid"]]}
    return client, target, secrets.read_keys(work / "data", name)["primary"]


def connections(args: tuple) -> tuple[int, int, int]:
    """One client process: (connections made, resumed handshakes, errors) in `seconds` (see the docstring)."""
    port, key, ca_file, mode, seconds = args
    context = ssl.create_default_context(cafile=ca_file) if mode != "plain" else None
    request = f"GET / HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n".encode()
    session, made, resumed, errors = None, 0, 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                sock = raw
                if context is not None:
                    sock = context.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
                if not answer.startswith(b"HTTP/1.1 200"):
                    errors += 1
                    continue
                made += 1
                if context is not None:
                    resumed += sock.session_reused
                    if mode == "resumed":
                        session = sock.session  # the newest ticket (read with the answer)
        except OSError:
            errors += 1
    return made, resumed, errors


def connection_rates(plain: dict, tls: dict, key_plain: str, key_tls: str, ca_file: str, args) -> list[str]:
    lines = []
    with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
        for mode, target, key in (("plain", plain, key_plain), ("full", tls, key_tls), ("resumed", tls, key_tls)):
            cpu0 = sum(group_cpu_s(g) for g in target["groups"][:1])
            results = pool.map(connections, [(target["port"], key, ca_file, mode, args.seconds)] * args.clients)
            cpu = sum(group_cpu_s(g) for g in target["groups"][:1]) - cpu0
            made, resumed, errors = (sum(x) for x in zip(*results))
            lines.append(
                f"{mode:<8} {made / args.seconds:>9.0f} {resumed / max(1, made):>8.0%} "
                f"{cpu * 1000 / max(1, made):>9.3f} {errors:>6}"
            )
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="time limit per level, target and round")
    p.add_argument("--requests", type=int, default=20000, help="request limit per level, target and round")
    p.add_argument("--levels", default="1,8,64")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=2, help="client processes for the connections-per-second part")
    p.add_argument("--rsa", action="store_true", help="an RSA-2048 certificate instead of ECDSA P-256")
    p.add_argument("--connections-only", action="store_true", help="skip the keep-alive part")
    p.add_argument("--load", choices=["python", "wrk"], default="python", help="the keep-alive load generator")
    args = p.parse_args()
    if args.load == "wrk" and wrk_binary() is None:
        raise SystemExit("bench: wrk is not installed (Debian: apt-get install wrk); or use --load python")
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="mlctl-tlsbench-") as tmp:
        work = Path(tmp)
        (work / "model").mkdir()
        body = json.dumps({"data": train(work / "model")}).encode()
        key_type = trustme.KeyType.RSA if args.rsa else trustme.KeyType.ECDSA
        ca = trustme.CA(key_type=key_type)
        leaf = ca.issue_cert("127.0.0.1", key_type=key_type)
        cert, key, ca_file = work / "cert.pem", work / "key.pem", work / "ca.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        ca.cert_pem.write_to_path(str(ca_file))
        clients = []
        try:
            plain_client, plain, plain_key = start(work, "plain", None)
            clients.append(plain_client)
            tls_client, tls, tls_key = start(work, "tls", {"certificate": str(cert), "key": str(key)})
            clients.append(tls_client)
            context = ssl.create_default_context(cafile=str(ca_file))
            targets = {
                "plain": (plain, {**JSON, "Authorization": f"Bearer {plain_key}"}, None),
                "tls": (
                    tls,
                    {**JSON, "Authorization": f"Bearer {tls_key}"},
                    lambda limit: aiohttp.TCPConnector(limit=limit, ssl=context),
                ),
            }
            print(
                f"start {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average {os.getloadavg()}, "
                f"certificate {'RSA-2048' if args.rsa else 'ECDSA P-256'}, load generator {args.load}"
            )
            header = f"{'conc':>4} {'target':<6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>7} {'errors':>6}"
            pooled, cpu_s = {}, {}
            for rnd in range(1, 0 if args.connections_only else args.rounds + 1):
                print(f"\nround {rnd}/{args.rounds}\n{header}", flush=True)
                for c in levels:
                    for name in list(targets) if rnd % 2 else list(reversed(targets)):
                        target, headers, connector = targets[name]
                        url = target["url"]
                        if args.load == "wrk":
                            drive_wrk(url, body, c, 1, headers=headers)  # warm-up, not counted
                            cpu0 = sum(group_cpu_s(g) for g in target["groups"])
                            r = drive_wrk(url, body, c, args.seconds, headers=headers)
                        else:
                            drive(url, body, c, 2000, 1.0, warmup_s=0.0, headers=headers, connector=connector)
                            cpu0 = sum(group_cpu_s(g) for g in target["groups"])
                            r = drive(url, body, c, args.requests, args.seconds, headers=headers, connector=connector)
                        cpu = sum(group_cpu_s(g) for g in target["groups"]) - cpu0
                        print(f"{c:>4} {name:<6} {r.cells()} {cpu * 1000 / max(1, r.requests):>7.3f} {r.error_cells()}")
                        before = pooled.get((name, c))
                        if args.load == "wrk":
                            pooled[(name, c)] = r if before is None else before.merged(r)
                        else:
                            pooled[(name, c)] = merge(before, r)
                        cpu_s[(name, c)] = cpu_s.get((name, c), 0.0) + cpu
            if pooled:
                print(f"\nall {args.rounds} round(s) pooled\n{header}")
                for c in levels:
                    for name in targets:
                        r = pooled[(name, c)]
                        print(f"{c:>4} {name:<6} {r.cells()} {cpu_s[(name, c)] * 1000 / max(1, r.requests):>7.3f}")
                print(
                    "\ntls/plain (req/s): "
                    + "   ".join(f"c={c}: {pooled[('tls', c)].rps / pooled[('plain', c)].rps:.2f}" for c in levels)
                    + "   (goal: >= 0.85 at c=8)"
                )
                per = {k: cpu_s[k] * 1000 / max(1, pooled[k].requests) for k in pooled}
                print(
                    "tls/plain (cpu ms per request, host + instance): "
                    + "   ".join(f"c={c}: {per[('tls', c)] / per[('plain', c)]:.2f}" for c in levels)
                )
                print(f"load average after keep-alive: {os.getloadavg()}")
            print(
                f"\nnew connections per second ({args.clients} client processes, {args.seconds:g} s each; "
                "one GET / per connection)"
            )
            print(f"{'mode':<8} {'conn/s':>9} {'resumed':>8} {'gw cpu ms':>9} {'errors':>6}")
            for line in connection_rates(plain, tls, plain_key, tls_key, str(ca_file), args):
                print(line, flush=True)
            print(f"end {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average {os.getloadavg()}")
        finally:
            for client in clients:
                client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
