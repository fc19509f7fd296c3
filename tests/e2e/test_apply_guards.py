"""Apply guards: the state lock (fail naming the holder, or wait) and the yes-question on a terminal."""

import os
import threading

from e2e_support import mlctl

from mlctl.state.lock import state_lock


def test_second_apply_fails_naming_the_holder_or_waits(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    state = root / ".mlctl" / "state.json"
    with state_lock(state, "apply"):                   # another mlctl holds the lock (this test process)
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
    threading.Timer(1.0, release.set).start()          # let go while the second apply waits
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
        proc = subprocess.Popen([sys.executable, "-m", "mlctl.cli", "-C", str(root), "apply"], stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    assert not (root / ".mlctl" / "state.json").exists() or '"resources": {}' in (root / ".mlctl" / "state.json").read_text()
    code, out, err = run_on_terminal(root, "yes")
    assert code == 0 and "Apply complete!" in out, err
