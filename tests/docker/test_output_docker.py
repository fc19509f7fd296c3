"""A container's output goes to `mlctl logs` through the FIFO its host reads, never through the engine (issue
14's throughput goal: the engine off the per-request path); once the host is killed the server in the container
drops its output and keeps serving."""

import json
import os
import signal
import socket
from pathlib import Path

from docker_support import containers_of, docker_split, engine_api  # noqa: F401
from e2e_support import Endpoint, alive, keys, mlctl, wait_until


def logs(root) -> str:
    return mlctl(root, "logs", "dsplit", "--deployment", "blue", "--lines", "500").stdout


def answers_on(sock_path: str) -> bytes:
    """The first line of GET / asked straight on an instance's unix socket (no host in between)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(sock_path)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return s.makefile("rb").readline()


def server_of(container_pid: int) -> int:
    """The scoring server: the only child of the container's init (docker-init)."""
    (pid,) = Path(f"/proc/{container_pid}/task/{container_pid}/children").read_text().split()
    return int(pid)


def test_request_lines_reach_mlctl_logs_and_not_the_engine(docker_split, engine_api):
    p, root, api = docker_split, docker_split.root, engine_api
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    ep = Endpoint(root, "dsplit")
    key = keys(root, "dsplit")["primaryKey"]
    assert all(ep.score(key=key)[0] == 200 for _ in range(20))
    ep.close()
    assert wait_until(lambda: logs(root).count("POST /score 200") >= 20)  # the access lines, in the log file
    assert "listening on unix:/run/mlctl/" in logs(root)
    (box,) = containers_of(api, root, every=False)
    engine_log = api.logs(box["Id"], stdout=True, stderr=True).decode("utf-8", "replace")
    assert "POST /score" not in engine_log and "listening on" not in engine_log, engine_log[-2000:]

    shown = json.loads(mlctl(root, "show", "dsplit", "--json").stdout)
    info = api.inspect_container(box["Id"])
    (folder,) = [m["Source"] for m in info["Mounts"] if m["Destination"] == "/run/mlctl"]
    assert Path(folder).name.startswith("blue-g")  # the instance's own folder
    (sock,) = Path(folder).glob("*.sock")
    server = server_of(info["State"]["Pid"])
    assert os.readlink(f"/proc/{server}/fd/1").endswith(".out")  # its FIFO in the socket folder
    os.killpg(shown["host"]["pid"], signal.SIGKILL)  # the FIFO's reader goes away
    assert wait_until(lambda: not alive(shown["host"]["pid"]))
    assert wait_until(lambda: os.readlink(f"/proc/{server}/fd/1") == "/dev/null")
    assert os.readlink(f"/proc/{server}/fd/2") == "/dev/null"
    for _ in range(50):  # every request line now dropped
        assert answers_on(str(sock)).startswith(b"HTTP/1.1 200")
    assert alive(server) and api.inspect_container(box["Id"])["State"]["Running"]
