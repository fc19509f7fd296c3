"""The plan memo (.mlctl/lastplan.json) never prints a stale plan: an unchanged project's plan is printed again
from it, and after an edit of a configuration file, a model or code file, a conda file, the state, a `git
checkout`, a touched file and a hostile memo file, `mlctl plan` (a real CLI process) prints what it prints with
no memo at all (a run whose cache key is another user's, so it can read no memo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from goldens import HERE, copy_project, two_branches
from goldens import cli as mlctl
from mlctl.signedfiles import sign

MEMO = Path(".mlctl") / "lastplan.json"
KEPT = (MEMO, *(Path(".mlctl") / n for n in ("documents.json", "planbase.pickle", "configdigests.json")))


def settle() -> None:
    """Let a second pass after the last change to the files: a plan made within a second of a change to one
    of its inputs is not kept (mlctl.reconciler.planmemo), and these tests want it kept."""
    time.sleep(1.1)


class Planner:
    def __init__(self, root: Path, tmp: Path):
        self.root, self.user, self.stranger = root, tmp / "xdg-user", tmp / "xdg-stranger"

    def run(self, *args: str, xdg: Path | None = None) -> tuple[int, str, str]:
        r = mlctl(self.root, xdg or self.user, "plan", "--refresh=false", *args)
        assert r.returncode in (0, 1, 2), (r.returncode, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        return r.returncode, r.stdout, r.stderr

    def uncached(self, *args: str) -> tuple[int, str, str]:
        """The plan from a run that cannot use the memo (another user's key); the user's files are put back."""
        saved = {p: (self.root / p).read_bytes() for p in KEPT if (self.root / p).is_file()}
        out = self.run(*args, xdg=self.stranger)
        for p, data in saved.items():
            (self.root / p).write_bytes(data)
        return out

    def stamp(self) -> tuple[int, int] | None:
        """The memo file's (inode, mtime): a plan that makes its plan again and keeps it replaces the file."""
        st = os.lstat(self.root / MEMO) if os.path.lexists(self.root / MEMO) else None
        return (st.st_ino, st.st_mtime_ns) if st else None

    def replayed(self, *args: str) -> tuple[int, str, str]:
        """A plan that must come from the memo (the memo file is left as it was)."""
        before = self.stamp()
        out = self.run(*args)
        assert before is not None and self.stamp() == before, "the plan was made again, not replayed"
        return out

    def check(self, *args: str) -> tuple[int, str, str]:
        """The plan as the user gets it, which must be the plan made without any memo."""
        got = self.run(*args)
        assert got == self.uncached(*args)
        return got


@pytest.fixture(scope="module")
def fresh_projects(request, tmp_path_factory) -> dict[str, Path]:
    """A copy of the project for each test of this module that asks for `planner` ({test id: its root}), all
    made at the start and settled once: one second's wait for the module, not one per test. Each test still
    gets a copy of its own, untouched until it starts."""
    wanted = [i for i in request.session.items if i.module is request.module and "planner" in i.fixturenames]
    folder = tmp_path_factory.mktemp("plan-memo-projects")
    copies = {
        item.nodeid: copy_project(HERE / "_project", folder / str(n) / "project") for n, item in enumerate(wanted)
    }
    settle()
    return copies


@pytest.fixture
def planner(request, tmp_path, fresh_projects):
    root = fresh_projects.pop(request.node.nodeid, None)
    if root is None:  # a test the module's list did not name (a rerun plugin's): a copy made now
        root = copy_project(HERE / "_project", tmp_path / "project")
        settle()
    return Planner(root, tmp_path)


def write_applied_state(root: Path) -> None:
    """The state apply would write for the project (every resource ready), written by mlctl's own code."""
    code = (
        "import sys\n"
        "from mlctl.projectpaths import Project\n"
        "from mlctl.schemas.load import load_config\n"
        "from mlctl.state.statefile import ResourceState, State, write_state\n"
        "p = Project.at(sys.argv[1])\n"
        "config = load_config(p)\n"
        "config.raise_for_errors()\n"
        "state = State()\n"
        "state.resources = {str(r.address): ResourceState.from_resource(r) for r in config.resources}\n"
        "write_state(p.state_path, state)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(root)], check=True, timeout=120)


@pytest.mark.parametrize("args", [(), ("--json",), ("--markdown",), ("--detailed-exitcode",)])
def test_an_unchanged_project_is_printed_again_from_the_memo(planner, args):
    first = planner.check(*args)
    settle()
    first = planner.check(*args)  # kept now: its inputs are more than a second old
    assert planner.replayed(*args) == first
    assert planner.replayed(*args) == first
    if "--detailed-exitcode" in args:
        assert first[0] == 2  # a first plan: everything is created
    if "--json" in args:
        assert json.loads(first[1])["resource_changes"]


def edit(root: Path, what: str) -> None:
    if what == "config":
        blue = root / "blue.yml"
        blue.write_text(blue.read_text().replace("instance_count: 1", "instance_count: 3"))
    elif what == "model file, same size":
        f = next(p for p in (root / "model").iterdir() if p.is_file())
        data = bytearray(f.read_bytes())
        data[0] ^= 1
        f.write_bytes(bytes(data))
    elif what == "code file added":
        (root / "code" / "helper.py").write_text("VALUE = 1\n")
    elif what == "code file replaced by a link":
        other = root / "other.py"
        other.write_text("def init():\n    pass\n\n\ndef run(raw):\n    return 'other'\n")
        (root / "code" / "score.py").unlink()
        (root / "code" / "score.py").symlink_to(other)
    elif what == "code folder linked out of the project":
        outside = root.parent / "outside-code"
        outside.mkdir()
        (outside / "score.py").write_text((root / "code" / "score.py").read_text())
        os.rename(root / "code", root / "code-moved")
        (root / "code").symlink_to(outside)
    elif what == "conda file":
        conda = root / "environment" / "conda.yml"
        conda.write_text(conda.read_text() + "  - pip:\n    - requests==2.32.3\n")
    elif what == "ignore file":
        (root / "code" / ".amlignore").write_text("score.py\n")
    elif what == "state":
        write_applied_state(root)
    elif what == "project file":
        (root / "mlctl.yaml").write_text("runtime: local\nlocal:\n  python: '3.11'\n")
    elif what == "config file removed":
        (root / "green.yml").unlink()
    else:
        raise AssertionError(what)


EDITS = [
    "config",
    "model file, same size",
    "code file added",
    "code file replaced by a link",
    "code folder linked out of the project",
    "conda file",
    "ignore file",
    "state",
    "project file",
    "config file removed",
]


@pytest.mark.parametrize("what", EDITS)
def test_an_edit_is_never_answered_from_the_memo(planner, what):
    planner.check("--json")
    settle()
    before = planner.check("--json")
    assert planner.replayed("--json") == before  # the memo is live
    edit(planner.root, what)
    after = planner.check("--json")  # the edit is seen, and the plan is what a run without a memo makes
    assert after != before
    settle()
    assert planner.check("--json") == after
    assert planner.run("--json") == after


def test_a_touched_file_with_the_same_content_plans_the_same(planner):
    planner.check()
    settle()
    first = planner.check()
    for f in [*planner.root.glob("*.yml"), *planner.root.glob("*/*")]:
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 5_000_000_000))
    assert planner.check() == first
    settle()
    assert planner.check() == first


def _green_five_and_an_edited_script(root: Path) -> None:
    (root / "green.yml").write_text((root / "green.yml").read_text().replace("instance_count: 1", "instance_count: 5"))
    (root / "code" / "score.py").write_text((root / "code" / "score.py").read_text() + "\n# other\n")


def test_git_checkout_of_another_version_is_planned_from_its_files(planner):
    root = planner.root
    git = two_branches(root, _green_five_and_an_edited_script)
    settle()
    planner.check("--json")
    on_other = planner.check("--json")
    for branch, expected in [("main", None), ("other", on_other), ("main", None), ("other", on_other)]:
        subprocess.run([*git, "checkout", "-q", branch], check=True)  # same size, maybe the same second
        got = planner.check("--json")
        assert got == expected if expected else got != on_other
    settle()
    assert planner.check("--json") == on_other


def forged(key: bytes, stdout, *, root: Path) -> bytes:
    """A memo claiming `stdout` for whatever plan is asked, signed with `key` (its key field is the one of the
    user's genuine memo, so only the signature can give it away)."""
    real = json.loads((root / MEMO).read_bytes().partition(b"\n")[2])
    payload = json.dumps({**real, "stderr": [], "stdout": stdout, "changes": False}).encode()
    return sign(key, payload)


def plant(target: Path, hostile: str, lie: bytes, outside: Path) -> None:
    """Put a hostile file at `target` in place of mlctl's own: `lie` (signed with another key) as it is, unsigned or
    behind a link to `outside`; or garbage, a FIFO, a 65 MiB file or a folder."""
    target.unlink(missing_ok=True)
    if hostile == "foreign-key":  # signed on another machine, committed with the pull request
        target.write_bytes(lie)
    elif hostile == "unsigned":
        target.write_bytes(lie.partition(b"\n")[2])
    elif hostile == "garbage":
        target.write_bytes(b"\x00\xff{not json" * 1000)
    elif hostile == "link":
        outside.write_bytes(lie)
        os.symlink(outside, target)
    elif hostile == "fifo":
        os.mkfifo(target)
    elif hostile == "huge":
        with open(target, "wb") as f:
            f.truncate(65 * 1024 * 1024)
    elif hostile == "folder":
        target.mkdir()


LIE = {"styled": False, "pieces": ["No changes. The runtime matches the configuration.", "\n"]}


@pytest.mark.parametrize("hostile", ["foreign-key", "unsigned", "garbage", "link", "fifo", "huge", "folder"])
def test_a_hostile_memo_is_never_believed(planner, tmp_path, hostile):
    planner.check()
    settle()
    expected = planner.check()
    assert "No changes" not in expected[1]
    memo = planner.root / MEMO
    lie = forged(b"k" * 32, LIE, root=planner.root)
    outside = tmp_path / "outside.json"
    plant(memo, hostile, lie, outside)
    assert planner.run() == expected
    assert planner.run("--detailed-exitcode")[0] == 2
    if hostile == "link":
        assert outside.read_bytes() == lie  # untouched, not followed
        assert memo.is_symlink()


def test_a_memo_of_another_folder_is_not_used(planner, tmp_path):
    planner.check()
    settle()
    planner.check()
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(planner.root), str(copy)], check=True)  # with its .mlctl/
    (copy / "blue.yml").write_text((copy / "blue.yml").read_text().replace("instance_count: 1", "instance_count: 4"))
    settle()
    there = Planner(copy, tmp_path)
    assert there.check("--json") != planner.run("--json")
