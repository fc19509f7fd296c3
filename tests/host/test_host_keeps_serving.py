"""The host keeps serving (issue 24): slow heads and slow bodies without a key leave room for keyed clients,
instance output with no newline is cut into bounded lines, and an over-long x-request-id is not blamed on
the model. Real hosts and instances, with uvloop and without."""

from __future__ import annotations

import collections
import threading

from hosttools import body, slow_bodies, slow_heads, wait_until
from test_host_auth import post


def attacked(attack, good):
    """Run `attack(started)` in a thread; once it has its connections open, `good()` (the keyed clients'
    requests, returning their statuses); then wait for the attack to end. (good's statuses, the attack's)"""
    started = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("attack", attack(started)))
    thread.start()
    try:
        assert started.wait(60), "the attack did not start"
        statuses = good()
    finally:
        thread.join(120)
    return statuses, result["attack"]


def test_slow_heads_without_a_key_leave_room_for_keyed_clients(make_host, loop_mode, monkeypatch):
    """More slow-header connections than the connection limit: before, they held every slot (up to 75 s
    each) and every new keyed connection was answered 503."""
    monkeypatch.setenv("MLCTL_HOST_MAX_CONNECTIONS", "100")  # three quarters (75) for connections with no key yet
    monkeypatch.setenv("MLCTL_HOST_HEAD_TIMEOUT_S", "2")
    host = make_host()
    host.assert_loop(loop_mode)
    host.create("blue")
    host.client.set_traffic({"blue": 100})

    def good():  # each on a new connection, while the slow heads hold theirs
        return [post(host, host.auth())[0] for _ in range(30)]

    statuses, attack = attacked(lambda started: slow_heads(host.info.port, 110, 8.0, started=started), good)
    assert collections.Counter(statuses) == {200: 30}, statuses
    # past their share, the oldest are turned away (503) to make room for newer connections
    assert attack["503"] >= 110 - 75, attack
    # fewer than their share: each is answered 408 once its head is 2 s late, then opened again
    late = slow_heads(host.info.port, 20, 5.0)
    assert late["408"] >= 20 and late["503"] == 0, late
    assert "Traceback" not in host.log()


def test_slow_bodies_without_a_key_hold_only_their_share_of_the_budget(make_host, loop_mode, monkeypatch):
    """Bodies without a key, each sent but for its last byte, held at once: before, they could fill the whole
    body budget and keyed requests were answered 503; now they hold an eighth of it at most."""
    monkeypatch.setenv("MLCTL_HOST_BODY_BUDGET_MIB", "4")  # 0.5 MiB for bodies without a key
    monkeypatch.setenv("MLCTL_HOST_HEAD_TIMEOUT_S", "60")  # the share is what is tested, not the time limit
    host = make_host()
    host.assert_loop(loop_mode)
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    refusals = []

    def good():
        def share_taken() -> bool:  # a body like the attack's, without a key, no longer fits
            refusals.append(post(host, {}, data=b"x" * 60_000))
            return refusals[-1][0] == 503

        wait_until(share_taken, 30, "the share of bodies without a key taken")
        # a keyed body larger than what the attack leaves free of the whole budget (before: all but ~110 kB)
        return [post(host, host.auth(), data=body(pad="p" * 200_000))[0] for _ in range(20)]

    statuses, attack = attacked(lambda started: slow_bodies(host.info.port, 80, 6.0, started=started), good)
    assert collections.Counter(statuses) == {200: 20}, statuses
    assert attack["503"] >= 1, attack
    assert "MLCTL_HOST_UNAUTHENTICATED_BODY_MIB" in refusals[-1][1]["message"], refusals[-1]


def test_an_over_long_request_id_is_replaced_not_blamed_on_the_model(make_host, loop_mode):
    host = make_host()
    host.assert_loop(loop_mode)
    host.create("blue")
    host.client.set_traffic({"blue": 100})
    status, answer, headers = post(host, host.auth(**{"x-request-id": "r" * 100}))
    assert status == 200 and headers["x-request-id"] == "r" * 100 == answer["headers"]["x-request-id"]
    status, answer, headers = post(host, host.auth(**{"x-request-id": "r" * 101}))
    assert status == 200, (status, answer)
    replaced = headers["x-request-id"]
    assert len(replaced) == 36 and answer["headers"]["x-request-id"] == replaced  # the host's own UUID
    for name in ("x-ms-request-id", "x-ms-client-request-id"):  # the client's error: 431, not the model's 424
        status, answer, headers = post(host, host.auth(**{name: "c" * 101}))
        assert status == 431 and name in answer["message"], (status, answer)


NO_NEWLINE = """
import sys
def init():
    piece = "x" * 65536
    for _ in range(int(MEGABYTES * 16)):
        sys.stdout.write(piece)
        sys.stdout.flush()
    for n in range(20000):  # a progress bar redrawn with \\r, never a newline
        sys.stdout.write(f"\\r{n:>8} of 20000 [{'#' * (n // 1000):<20}]")
    sys.stdout.write("\\ninit done\\n")
    sys.stdout.flush()
def run(raw_data):
    return {"ok": True}
"""


def vm(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def test_output_with_no_newline_is_cut_into_marked_lines_in_bounded_memory(make_host, tmp_path, loop_mode):
    """48 MB of output with no newline, then a \\r progress bar: before, the host buffered all of it and copied
    it again on every read (O(n^2)); now lines are cut at 64 KiB and marked, the host's memory stays flat."""
    code = tmp_path / "code-no-newline"
    code.mkdir()
    (code / "score.py").write_text("MEGABYTES = 48\n" + NO_NEWLINE)
    host = make_host()
    host.assert_loop(loop_mode)
    before = vm(host.info.pid, "VmRSS")
    spec = host.spec("blue", env={})
    host.client.create_deployment({**spec, "code_dir": str(code)}, timeout=120)
    host.remember()
    logs = host.data_dir / "logs" / host.name / "blue"
    wait_until(lambda: "init done" in (logs / "instance-0.log").read_text(errors="replace"), 60, "init's last line")
    grown = vm(host.info.pid, "VmHWM") - before
    assert grown < 32 << 20, f"the host's peak memory grew {grown >> 20} MiB"
    from mlctl.runtime.host.relay import CUT_MARK, MAX_LINE

    marked = longest = 0
    for path in logs.glob("instance-0.log*"):
        for line in path.read_bytes().split(b"\n"):
            line += b"\n"
            if line.endswith(CUT_MARK):
                marked += 1
                line = line[: -len(CUT_MARK)]
            longest = max(longest, len(line.rstrip(b"\n")))
    assert marked >= 2 and longest <= MAX_LINE, (marked, longest)
