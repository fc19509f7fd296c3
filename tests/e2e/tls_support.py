"""Helpers of the TLS end-to-end tests: certificates made per test (trustme), mlctl run inside the server's
network namespace (tests/netns.py), and clients in the other one: one request, or a bounded load that counts
every failure and the certificates it was served."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

CLIENT = r"""
import hashlib, http.client, json, socket, ssl, sys
a = json.loads(sys.argv[1])
try:
    sock = socket.create_connection((a["address"], a["port"]), timeout=20)
    conn = http.client.HTTPConnection(a["name"] or a["address"], a["port"], timeout=20)
    if a["tls"]:
        ctx = ssl.create_default_context(cafile=a["cafile"])
        if a.get("client_cert"):
            ctx.load_cert_chain(a["client_cert"])
        sock = ctx.wrap_socket(sock, server_hostname=a["name"] or a["address"])
    conn.sock = sock
    conn.request(a["method"], a["path"], body=a.get("body"), headers=a.get("headers") or {})
    r = conn.getresponse()
    print(json.dumps({"status": r.status, "body": r.read().decode("utf-8", "replace")}))
except Exception as e:
    print(json.dumps({"status": 0, "error": f"{type(e).__name__}: {e}"}))
"""

# keep-alive connections from 4 threads, each new every 10 requests (so a reload is seen by new handshakes);
# runs until the stop file appears and then NEW_AFTER more requests have seen another certificate, or DEADLINE_S
LOAD = r"""
import hashlib, http.client, json, os, socket, ssl, sys, threading, time
a = json.loads(sys.argv[1])
ctx = ssl.create_default_context(cafile=a["cafile"])
if a.get("client_cert"):
    ctx.load_cert_chain(a["client_cert"])
lock = threading.Lock()
seen, failures, ok = {}, [], [0]
deadline = time.monotonic() + a["deadline_s"]

def done():
    if time.monotonic() > deadline or len(failures) > 20:
        return True
    return os.path.exists(a["stop"]) and len(seen) > 1 and min(seen.values()) >= a["new_after"]

def worker():
    while not done():
        try:
            sock = ctx.wrap_socket(socket.create_connection((a["address"], a["port"]), timeout=20),
                                   server_hostname=a["name"])
            digest = "sha256:" + hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()
            conn = http.client.HTTPConnection(a["name"], a["port"], timeout=20)
            conn.sock = sock
            for _ in range(10):
                conn.request("POST", "/score", body=b"{}", headers=a["headers"])
                r = conn.getresponse()
                r.read()
                with lock:
                    if r.status == 200:
                        ok[0] += 1
                        seen[digest] = seen.get(digest, 0) + 1
                    else:
                        failures.append(f"HTTP {r.status}")
                if done():
                    break
            conn.close()
        except Exception as e:
            with lock:
                failures.append(f"{type(e).__name__}: {e}")

threads = [threading.Thread(target=worker) for _ in range(4)]
[t.start() for t in threads]
print("started", flush=True)
[t.join() for t in threads]
print(json.dumps({"ok": ok[0], "failures": failures, "seen": seen}), flush=True)
"""


def issue(ca, folder: Path, *names: str, days: float = 365, stem: str = "server") -> tuple[Path, Path]:
    """A certificate for `names` signed by the trustme `ca`: (cert.pem, key.pem 0600) in `folder`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = ca.issue_cert(
        *names, not_before=now - datetime.timedelta(days=1), not_after=now + datetime.timedelta(days=days)
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}-key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def client_pem(ca, folder: Path) -> Path:
    """A client certificate and its key in one PEM file (what ssl's load_cert_chain takes)."""
    cert = ca.issue_cert("client@example.test")
    path = folder / "client.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


def in_node(node, project, *args, check=True, timeout=300) -> subprocess.CompletedProcess:
    """The real CLI run inside `node`'s namespace (where the endpoint host it starts listens)."""
    done = node.run([sys.executable, "-m", "mlctl.cli", "-C", str(project), *args], timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"mlctl {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def request(node, address, port, *, name=None, tls=True, cafile=None, client_cert=None, path="/score", key=None):
    """{status, body} or {status: 0, error} of one request from `node` (POST /score, or GET another path)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    args = dict(
        address=address,
        port=port,
        name=name,
        tls=tls,
        cafile=cafile,
        client_cert=client_cert,
        method="POST" if path == "/score" else "GET",
        path=path,
        body="{}" if path == "/score" else None,
        headers=headers,
    )
    done = node.run([sys.executable, "-c", CLIENT, json.dumps(args, default=str)], timeout=90)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start_load(node, address, port, *, name, cafile, client_cert, key, stop: Path) -> subprocess.Popen:
    """The bounded load (LOAD) started in `node`; returns once its threads run."""
    args = dict(
        address=address,
        port=port,
        name=name,
        cafile=str(cafile),
        client_cert=str(client_cert) if client_cert else None,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        stop=str(stop),
        new_after=20,
        deadline_s=150,
    )
    proc = node.popen([sys.executable, "-c", LOAD, json.dumps(args)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    return proc


def finish_load(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=200)
    return json.loads(out.strip().splitlines()[-1])
