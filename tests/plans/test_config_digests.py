"""The recorded configuration digests (.mlctl/configdigests.json: the plan memo's key hashes only the files whose
inode, size, mtime or ctime changed) never hide an edit: an edit of the same size with its mtime put back, an edit
within the second a plan ran, a `git checkout` back and forth and a hostile digests file all give, through the real
CLI, the plan of a run that can use nothing kept (another user's key); and an entry is recorded only for a file whose
ctime is more than a second older than the plan that hashed it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from goldens import two_branches
from mlctl.reconciler.configdigests import FILE, RACY_NS, ConfigDigests
from mlctl.signedfiles import sign
from test_plan_memo import Planner, plant, planner, fresh_projects, settle  # noqa: F401

DIGESTS = Path(".mlctl") / FILE


def recorded(root: Path) -> dict:
    """The entries of the digests file (its signature is not checked here)."""
    return json.loads((root / DIGESTS).read_bytes().partition(b"\n")[2])["files"]


def same_size_same_mtime(path: Path, old: str, new: str) -> None:
    """Replace `old` by `new` (as long) in the file, in place (same inode), and put its mtime back."""
    assert len(old) == len(new)
    st = os.stat(path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("args", [(), ("--json",)])
def test_an_edit_of_the_same_size_with_its_mtime_put_back_is_seen(planner, args):
    planner.check(*args)
    settle()
    first = planner.check(*args)  # kept, with every file recorded (all older than a second)
    path = planner.root / "batch-main.yml"
    assert str(path) in recorded(planner.root)
    same_size_same_mtime(path, "instance_count: 2", "instance_count: 3")
    got = planner.check(*args)
    assert got != first and "3" in got[1]
    settle()
    same_size_same_mtime(path, "instance_count: 3", "instance_count: 2")
    assert planner.check(*args) == first


def test_edits_within_the_second_of_a_plan_are_seen(planner):
    """Edits of the same size one after another, each planned at once (on a coarse clock, within one mtime tick):
    a file changed less than a second before the plan that hashed it is not recorded, so each is hashed again (the
    rule itself: the last test; whether a plan starts within that second depends on the machine's load)."""
    planner.check()
    settle()
    first = planner.check()
    path = planner.root / "batch-main.yml"
    outputs = set()
    for count in "3452":  # each at once, no second between the edit and the plan
        path.write_text(re.sub(r"instance_count: \d", f"instance_count: {count}", path.read_text()))
        outputs.add(planner.check()[1])
    assert len(outputs) == 4
    assert planner.check() == first


def test_git_checkout_back_and_forth_is_planned_from_the_files(planner):
    root = planner.root

    def edit(r: Path) -> None:  # two files, each the same size on both branches
        for name in ("batch-main.yml", "green.yml"):
            (r / name).write_text(re.sub(r"instance_count: \d", "instance_count: 4", (r / name).read_text()))

    git = two_branches(root, edit)
    settle()
    planner.check()
    on_other = planner.check()
    for branch in ("main", "other", "main", "other"):
        subprocess.run([*git, "checkout", "-q", branch], check=True)  # same sizes, maybe the same second
        got = planner.check()
        assert (got == on_other) == (branch == "other")
        settle()
        assert planner.check() == got


def _forged(root: Path, key: bytes) -> bytes:
    """A digests file saying every configuration file still has the digest of an older text, with the entries of
    the files as they are now (inode, size, mtime, ctime), signed with `key`."""
    entries = {}
    for path in sorted(root.glob("*.yml")):
        st = os.stat(path)
        old = path.read_text().replace("instance_count: 3", "instance_count: 2").encode()
        entries[str(path)] = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, hashlib.sha256(old).hexdigest()]
    return sign(key, json.dumps({"format": 1, "files": entries}).encode())


@pytest.mark.parametrize("hostile", ["foreign-key", "unsigned", "garbage", "link", "fifo", "huge", "folder"])
def test_a_hostile_digests_file_is_never_believed(planner, tmp_path, hostile):
    planner.check()
    settle()
    before = planner.check()
    path = planner.root / "batch-main.yml"
    path.write_text(path.read_text().replace("instance_count: 2", "instance_count: 3"))
    settle()
    target = planner.root / DIGESTS
    lie = _forged(planner.root, b"k" * 32)  # the plan before the edit, if it were believed
    outside = tmp_path / "outside.json"
    plant(target, hostile, lie, outside)
    got = planner.check()
    assert got != before and "3" in got[1]
    if hostile == "link":
        assert outside.read_bytes() == lie  # untouched, not followed
        assert target.is_symlink()


def test_an_entry_is_recorded_only_for_a_file_older_than_a_second(tmp_path):
    path = tmp_path / "a.yml"
    path.write_text("name: a\n")
    st = os.stat(path)
    racy = ConfigDigests(tmp_path / FILE, b"k" * 32, {}, started_ns=time.time_ns())
    racy.record(str(path), st, "d" * 64)
    assert racy.kept == {}
    settled = ConfigDigests(tmp_path / FILE, b"k" * 32, {}, started_ns=st.st_ctime_ns + RACY_NS)
    settled.record(str(path), st, "d" * 64)
    assert settled.kept == {str(path): [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, "d" * 64]}
    later = ConfigDigests(tmp_path / FILE, b"k" * 32, settled.kept, started_ns=time.time_ns())
    assert later.recorded(str(path)) == "d" * 64
    os.chmod(path, 0o600)  # a change of the ctime alone (size and mtime as they were)
    assert later.recorded(str(path)) is None
