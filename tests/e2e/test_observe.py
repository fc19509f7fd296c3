"""Observing a running endpoint through the CLI: `mlctl logs` (--lines, --instance, --follow across a
rotation), logs rotated by size (instance logs and host.log), one request id in both logs, and the
restart count in `mlctl show` after an instance is killed."""

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid

from e2e_support import Endpoint, alive, keys, mlctl, wait_until

ROTATE_AT = 8192  # MLCTL_LOG_MAX_BYTES for the host: a few dozen request lines per file


def post(ep, key, request_id):
    ep.conn.request(
        "POST", "/score", body=b"{}", headers={"Authorization": f"Bearer {key}", "x-request-id": request_id}
    )
    resp = ep.conn.getresponse()
    resp.read()
    return resp.status


def instance_text(logs, k: int) -> str:
    """Everything instance k's log files hold (rotated ones included)."""
    return "".join(f.read_text() for f in (logs / "blue").glob(f"instance-{k}.log*"))


def in_order(text: str, needles: list[str]) -> bool:
    at = [text.index(n) for n in needles]
    return at == sorted(at)


def read_until(proc, needle, timeout=30.0) -> str:
    """Output of a running `mlctl logs --follow` until it holds `needle` (bounded). Read from the
    fd itself: select() does not see lines already sitting in a Python file object's buffer."""
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline and needle.encode() not in out:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    return out.decode()


def test_logs_lines_instance_follow_rotation_request_ids_and_restarts_in_show(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {"count": 2}})
    mlctl(root, "apply", "--auto-approve", env={**os.environ, "MLCTL_LOG_MAX_BYTES": str(ROTATE_AT)})
    key = keys(root, "split")["primaryKey"]
    ep = Endpoint(root, "split")
    logs = root / ".mlctl" / "logs" / "split"
    run = uuid.uuid4().hex[:8]
    ids = [f"{run}-{n:04d}" for n in range(300)]
    assert {post(ep, key, rid) for rid in ids} == {200}
    assert wait_until(lambda: all(rid in instance_text(logs, 0) + instance_text(logs, 1) for rid in ids[-3:]), 10)

    # rotated by size: each instance log has backups, none is over the limit
    for k in (0, 1):
        files = sorted((logs / "blue").glob(f"instance-{k}.log*"))
        assert len(files) >= 2, files
        assert all(f.stat().st_size <= ROTATE_AT for f in files)
    # the host's own log (access lines) rotates too (checked every 5 s by the host)
    assert wait_until(lambda: (logs / "host.log.1").exists(), 20), sorted(logs.iterdir())

    # --lines per instance, prefixed by instance when there are several
    both = mlctl(root, "logs", "split", "--deployment", "blue", "--lines", "3").stdout.splitlines()
    assert len(both) == 6
    assert [line.split(" | ")[0] for line in both] == ["instance-0"] * 3 + ["instance-1"] * 3
    # --instance K: only that instance, no prefix; --lines reads back across the rotated files
    one = mlctl(root, "logs", "split", "--deployment", "blue", "--instance", "1", "--lines", "120").stdout
    lines = one.splitlines()
    assert len(lines) == 120 and not any(line.startswith("instance-") for line in lines)
    served_by_1 = [rid for rid in ids if rid in one]
    assert len(served_by_1) >= 50 and in_order(one, served_by_1)  # continuous across the rotated files
    assert not set(served_by_1) & {rid for rid in ids if rid in instance_text(logs, 0)}
    # one request id finds the request in the gateway's log (host.log) and the instance's log
    last = ids[-1]
    assert wait_until(
        lambda: (
            f"{last} POST /score blue 200"
            in mlctl(  # no --deployment: the host's log
                root, "logs", "split", "--lines", "50"
            ).stdout
        ),
        10,
    )  # (access lines flushed every 0.2 s)
    assert last in mlctl(root, "logs", "split", "--deployment", "blue", "--lines", "20").stdout
    # unknown instance: a clear error, exit 1, no traceback
    missing = mlctl(root, "logs", "split", "--deployment", "blue", "--instance", "7", check=False)
    assert missing.returncode == 1 and "instance 7" in missing.stderr and "Traceback" not in missing.stderr
    negative = mlctl(root, "logs", "split", "--deployment", "blue", "--lines", "-1", check=False)
    assert negative.returncode == 1 and "--lines" in negative.stderr and "Traceback" not in negative.stderr

    # --follow keeps printing across a rotation: the line of a request sent after it, many lines later
    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlctl.cli",
            "-C",
            str(root),
            "logs",
            "split",
            "--deployment",
            "blue",
            "--instance",
            "0",
            "--lines",
            "1",
            "--follow",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert read_until(follow, "\n", 30)  # the last line is printed: it is following now
        before = {f.name: f.stat().st_ino for f in (logs / "blue").glob("instance-0.log*")}
        late = [f"{run}-late-{n:04d}" for n in range(200)]
        assert {post(ep, key, rid) for rid in late} == {200}
        assert wait_until(lambda: all(rid in instance_text(logs, 0) + instance_text(logs, 1) for rid in late), 10)
        after = {f.name: f.stat().st_ino for f in (logs / "blue").glob("instance-0.log*")}
        assert after["instance-0.log"] != before["instance-0.log"]  # it rotated meanwhile
        served_by_0 = [rid for rid in late if rid in instance_text(logs, 0)]
        seen = read_until(follow, served_by_0[-1])
        assert served_by_0[-1] in seen, (follow.poll(), follow.poll() is not None and follow.stderr.read().decode())
        followed = [rid for rid in late if rid in seen]
        assert followed == served_by_0 and in_order(seen, followed)  # every line, once, in order
    finally:
        os.killpg(follow.pid, signal.SIGINT)
        try:
            follow.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(follow.pid, signal.SIGKILL)
            follow.wait()
        follow.stdout.close()
        follow.stderr.close()
        ep.close()

    # a killed instance is restarted, and show says so
    shown = json.loads(mlctl(root, "show", "split", "--json").stdout)
    victim = shown["deployments"]["blue"]["instances"][1]["pid"]
    os.kill(victim, signal.SIGKILL)

    def restarted():
        d = json.loads(mlctl(root, "show", "split", "--json").stdout)["deployments"]["blue"]
        i = d["instances"][1]
        return i["restarts"] == 1 and i["ready"] and i["pid"] != victim and d["ready_instances"] == 2

    assert wait_until(restarted, 30)
    assert not alive(victim)
    text = mlctl(root, "show", "split").stdout
    assert "instance 1: pid" in text and "1 restart(s)" in text and "instance 0: pid" in text
    assert "0 restart(s)" in text


def test_storage_initializer_shows_registration_and_the_image_build_log(example_project):
    mlctl(example_project, "apply", "--auto-approve")
    out = mlctl(
        example_project,
        "logs",
        "diabetes",
        "--deployment",
        "blue",
        "--container",
        "storage-initializer",
        "--lines",
        "5",
    ).stdout.splitlines()
    assert out[0].startswith("model ") and "registered at" in out[0] and "digest" in out[0]
    assert any(line.startswith("code snapshot ") for line in out)
    at = next(i for i, line in enumerate(out) if line.startswith("image build log "))
    assert 1 <= len(out) - at - 1 <= 5  # the build log's last --lines lines
    missing = mlctl(
        example_project, "logs", "diabetes", "--deployment", "green", "--container", "storage-initializer", check=False
    )
    assert missing.returncode == 1 and "green" in missing.stderr and "Traceback" not in missing.stderr
