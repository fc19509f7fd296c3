"""State lock: a real second process holds it; the message names it; --lock-timeout waits; death frees it."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from mlctl.errors import MlctlError
from mlctl.state.lock import lock_path, parse_timeout, read_holder, state_lock

HOLDER = textwrap.dedent("""
    import sys
    from mlctl.state.lock import state_lock
    with state_lock(sys.argv[1], "apply"):
        print("locked", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
""")


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of tmp_path/state.json until its stdin gets a line."""
    state = tmp_path / "state.json"
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert p.stdout.readline() == "locked\n"
    yield state, p
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=10)


def test_lock_file_names_the_holder(holder):
    state, p = holder
    info = read_holder(lock_path(state))
    assert info["pid"] == p.pid and info["operation"] == "apply"
    assert set(info) == {"pid", "host", "operation", "started"}


def test_second_taker_fails_naming_the_holder(holder):
    state, p = holder
    with pytest.raises(MlctlError) as e:
        with state_lock(state, "plan"):
            pass
    msg = str(e.value)
    assert f"the state is locked by pid {p.pid} on " in msg
    assert "(operation 'apply', started " in msg
    assert "--lock-timeout" in msg


def test_timeout_waits_until_the_holder_releases(holder):
    state, p = holder
    p.stdin.write("go\n")
    p.stdin.flush()
    with state_lock(state, "plan", timeout=60) as info:
        assert info["pid"] == os.getpid()
        assert read_holder(lock_path(state))["operation"] == "plan"
    assert p.wait(timeout=30) == 0
    assert read_holder(lock_path(state)) is None  # emptied on release


def test_a_killed_holder_frees_the_lock(holder):
    state, p = holder
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    with state_lock(state, "apply", timeout=0):
        pass


def test_released_lock_can_be_taken_again(tmp_path):
    with state_lock(tmp_path / "state.json", "apply"):
        with pytest.raises(MlctlError):
            with state_lock(tmp_path / "state.json", "plan"):
                pass
    with state_lock(tmp_path / "state.json", "plan"):
        pass
    assert (tmp_path / "state.lock").exists() and (tmp_path / ".gitignore").exists()


@pytest.mark.parametrize(
    "text, seconds", [("5", 5.0), ("5s", 5.0), ("500ms", 0.5), ("2m", 120.0), ("1.5h", 5400.0), (3, 3.0)]
)
def test_parse_timeout(text, seconds):
    assert parse_timeout(text) == seconds


@pytest.mark.parametrize("text", ["", "5 sec", "-1", "abc"])
def test_parse_timeout_rejects(text):
    with pytest.raises(ValueError):
        parse_timeout(text)


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with state_lock(blocker / "state.json", "plan") as info:  # no state there: nothing to lock
        assert info is None
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "state.json").write_text("{}")
    (tmp_path / "ro" / "state.lock").mkdir()  # cannot be opened as a file
    with pytest.raises(MlctlError) as e:
        with state_lock(tmp_path / "ro" / "state.json", "plan"):
            pass
    assert str(e.value).startswith("Error: cannot take the state lock: Is a directory")
