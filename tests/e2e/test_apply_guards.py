"""Apply guards: the state lock (fail naming the holder, or wait) and the yes-question on a terminal."""

import os
import threading

from e2e_support import mlctl

from mlctl.state.lock import state_lock


def test_second_apply_fails_naming_the_holder_or_waits(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    state = root / ".mlctl" / "state.json"
    with state_lock(state, "apply"):  # another mlctl holds the lock (this test process)
        out = mlctl(root, "apply", "--auto-approve", check=False)
    assert out.returncode == 1
    assert f"pid {os.getpid()}" in out.stderr and "'apply'" in out.stderr and "Traceback" not in out.stderr
    assert not state.exists() or '"resources": {}' in state.read_text()

    held, release = threading.Event(), threading.Event()

    def holder():
        with state_lock(state, "apply"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    threading.Timer(1.0, release.set).start()  # let go while the second apply waits
    out = mlctl(root, "apply", "--auto-approve", "--lock-timeout", "60s")
    t.join()
    assert "Apply complete!" in out.stdout


def run_on_terminal(root, answer: str):
    """`mlctl apply` with a terminal on stdin (a pty) that answers `answer`."""
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlctl.cli", "-C", str(root), "apply"],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(master, answer.encode() + b"\n")
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    return proc.returncode, out, err


def test_apply_asks_for_yes_on_a_terminal(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    code, out, err = run_on_terminal(root, "no")
    assert code == 1 and "Only 'yes' will be accepted" in out and "apply cancelled" in err
    assert (
        not (root / ".mlctl" / "state.json").exists()
        or '"resources": {}' in (root / ".mlctl" / "state.json").read_text()
    )
    code, out, err = run_on_terminal(root, "yes")
    assert code == 0 and "Apply complete!" in out, err


def test_two_real_applies_at_once(split_project):
    """A real apply holds the lock (stopped with SIGSTOP while its host starts instances): a second
    apply fails at once naming it; a third with --lock-timeout waits, then finds nothing left to do."""
    import signal
    import subprocess
    import sys

    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    first = subprocess.Popen(
        [sys.executable, "-m", "mlctl.cli", "-C", str(root), "apply", "--auto-approve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    waiter = None
    try:
        for line in first.stdout:
            if "waiting until ready" in line:
                first.send_signal(signal.SIGSTOP)
                break
        second = mlctl(root, "apply", "--auto-approve", check=False)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"pid {first.pid}" in second.stderr and "'apply'" in second.stderr, second.stderr
        waiter = subprocess.Popen(
            [sys.executable, "-m", "mlctl.cli", "-C", str(root), "apply", "--auto-approve", "--lock-timeout", "120s"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert mlctl(root, "plan", check=False).returncode == 1  # a plan also names the holder
        told = waiter.stderr.readline()  # it waits, saying for whom
        assert told.startswith("Waiting up to 120s for the state lock held by") and f"pid {first.pid}" in told
        first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0 and "Apply complete!" in out, err
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0 and "No changes" in out, out + err
    finally:
        for proc in (first, waiter):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.communicate(timeout=60)
