"""Two applies at once: the second fails naming the holder, or waits with --lock-timeout."""

import os
import threading

from conftest import mlctl

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
