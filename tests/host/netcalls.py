"""Calls from another network namespace (tests/netns.py): one HTTP(S) request by a fresh Python process there,
or a load of HTTPS clients (hosttools.send) running there until told to stop."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from subprocess import PIPE

CALL = r"""
import http.client, json, socket, ssl, sys
a = json.loads(sys.argv[1])
try:
    if a["scheme"] == "https":
        ctx = ssl.create_default_context(cafile=a.get("cafile"))
        if a.get("client_cert"):
            ctx.load_cert_chain(a["client_cert"])
        conn = http.client.HTTPSConnection(a.get("server_name") or a["host"], a["port"], timeout=20, context=ctx)
        if a.get("server_name"):  # connect to the address, verify the name (no resolver needed)
            raw = socket.create_connection((a["host"], a["port"]), timeout=20)
            conn.sock = ctx.wrap_socket(raw, server_hostname=a["server_name"])
    else:
        conn = http.client.HTTPConnection(a["host"], a["port"], timeout=20)
    body = a["body"].encode() if a.get("body") is not None else None
    conn.request(a["method"], a["path"], body=body, headers=a.get("headers") or {})
    r = conn.getresponse()
    print(json.dumps({"status": r.status, "body": r.read().decode("utf-8", "replace")}))
except Exception as e:
    print(json.dumps({"status": 0, "error": f"{type(e).__name__}: {e}"}))
"""


def call(
    node,
    host: str,
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    scheme: str = "http",
    headers: dict | None = None,
    body: str | None = None,
    cafile: str | None = None,
    client_cert: str | None = None,
    server_name: str | None = None,
) -> dict:
    """{status, body} of one request made from `node`, or {status: 0, error} when it failed (refused,
    handshake failed, reset). `host` is what the client connects to and verifies the certificate against, unless
    `server_name` names what to verify (and send as SNI) instead."""
    args = dict(
        host=host, port=port, path=path, method=method, scheme=scheme, headers=headers, body=body, cafile=cafile
    )
    args.update(client_cert=client_cert, server_name=server_name)
    done = node.run([sys.executable, "-c", CALL, json.dumps(args)], timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LOAD = r"""
import json, os, ssl, sys, time
sys.path.insert(0, sys.argv[2])
from hosttools import send
a = json.loads(sys.argv[1])
context = ssl.create_default_context(cafile=a["cafile"])

def until_done():
    deadline = time.monotonic() + a["limit_s"]
    while not os.path.exists(a["done"]) and time.monotonic() < deadline:
        time.sleep(0.05)

results = send(a["url"], a["total"], concurrency=a["concurrency"], headers=a["headers"], ssl=context,
               fresh=a["fresh"], during=until_done, limit_s=a["limit_s"])
print(json.dumps([[status, body if status != 200 else None] for status, body, _ in results]))
"""


def start_load(node, url: str, *, headers: dict, cafile: str, done: str, fresh: bool, total: int, concurrency: int):
    """Keep-alive (or, `fresh`, new-connection) HTTPS clients in `node` POSTing to `url` until the file `done`
    exists (bounded by `total` and 120 s); `finish_load` gives their [[status, error body]]."""
    args = dict(url=url, headers=headers, cafile=cafile, done=done, fresh=fresh, total=total)
    args.update(concurrency=concurrency, limit_s=120)
    here = str(Path(__file__).resolve().parent)
    return node.popen([sys.executable, "-c", LOAD, json.dumps(args), here], stdout=PIPE, stderr=PIPE, text=True)


def finish_load(proc) -> list:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)
