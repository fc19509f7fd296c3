"""The plan base (.mlctl/planbase.pickle) never makes a plan other than the full plan: after an edit of deployment
files, a `git checkout`, a touched file, a state written by an apply, a --set, and with a hostile base file, `mlctl
plan` (a real CLI process) prints what a run that can use no base and no memo prints (another user's key); and an
edit of a deployment file is made from the base (the base file is left as it was, the memo is written again)."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import pytest

from goldens import two_branches
from mlctl.signedfiles import sign
from test_plan_memo import MEMO, Planner, planner, fresh_projects, settle, write_applied_state  # noqa: F401

BASE = Path(".mlctl") / "planbase.pickle"


def stamp(root: Path, rel: Path) -> tuple[int, int] | None:
    st = os.lstat(root / rel) if os.path.lexists(root / rel) else None
    return (st.st_ino, st.st_mtime_ns) if st else None


def based(planner: Planner) -> None:
    """Two full plans a second apart (the memo keeps one plan: text, then --json): the second is kept, and as the
    folder was planned before, its base is written."""
    planner.check()
    settle()
    planner.check("--json")
    assert stamp(planner.root, BASE) is not None


def remade(planner: Planner, *args: str) -> tuple[int, str, str]:
    """A plan made from the base (the memo is written again, the base is not), equal to the full plan."""
    base, memo = stamp(planner.root, BASE), stamp(planner.root, MEMO)
    got = planner.run(*args)
    assert stamp(planner.root, MEMO) != memo, "the plan was not kept"
    assert stamp(planner.root, BASE) == base, "the plan was made in full"
    assert got == planner.uncached(*args)
    return got


def made_in_full(planner: Planner, *args: str) -> tuple[int, str, str]:
    """A plan made in full (it writes a new base), equal to the plan of a run that can use nothing kept."""
    base = stamp(planner.root, BASE)
    got = planner.run(*args)
    assert stamp(planner.root, BASE) != base, "no base was written"
    assert got == planner.uncached(*args)
    return got


def replace_in(root: Path, name: str, old: str, new: str) -> None:
    f = root / name
    text = f.read_text()
    assert old in text, (name, old)
    f.write_text(text.replace(old, new))


@pytest.mark.parametrize("args", [(), ("--json",), ("--markdown", "--detailed-exitcode")])
def test_an_edited_deployment_is_planned_from_the_base(planner, args):
    based(planner)
    first = planner.run(*args)
    for count in ("3", "4", "2"):  # and back to the text of the base: the base's own plan
        replace_in(
            planner.root,
            "batch-main.yml",
            "instance_count: " + ("2" if count == "3" else "3" if count == "4" else "4"),
            "instance_count: " + count,
        )
        settle()
        got = remade(planner, *args)
        assert (got == first) == (count == "2")


def test_two_deployments_edited(planner):
    text = (planner.root / "batch-main.yml").read_text()
    (planner.root / "batch-extra.yml").write_text(text.replace("name: main", "name: extra"))
    replace_in(planner.root, "batch-endpoint.yml", "main: 100", "main: 100\n  extra: 0")
    settle()
    based(planner)
    replace_in(planner.root, "batch-main.yml", "request_timeout_ms: 20000", "request_timeout_ms: 30000")
    replace_in(planner.root, "batch-extra.yml", "instance_count: 2", "instance_count: 5")
    settle()
    out = remade(planner, "--json")
    assert "extra" in out[1] and "30000" in out[1]
    remade(planner)


def test_a_deployment_that_declares_its_environment_is_planned_in_full(planner):
    based(planner)
    replace_in(planner.root, "green.yml", "instance_count: 1", "instance_count: 5")  # shop-green-env is declared here
    settle()
    made_in_full(planner, "--json")


@pytest.mark.parametrize(
    "name, old, new",
    [
        ("blue.yml", "instance_count: 1", "instance_count: 2"),  # the inline environment is declared here first
        ("model.yml", "path: model/", "path: model/\ndescription: other"),  # a model: every deployment of it
        ("endpoint.yml", "blue: 90\n  green: 10", "blue: 80\n  green: 20"),  # an endpoint's traffic
        ("batch-main.yml", "model: azureml:fraud:1", "model: azureml:fraud:2"),  # an error
        ("batch-main.yml", "instance_count: 2", "instance_count: -1"),  # a schema error
        ("batch-main.yml", "name: main", "name: other"),  # another deployment (traffic names main: an error)
        ("batch-main.yml", "code: code/", "code: environment/"),  # another code folder
        ("batch-main.yml", "scoring_script: score.py", "scoring_script: score.py\ninstance_type: Nope_Size"),  # warning
        ("batch-main.yml", "instance_count: 2", "instance_count: {{COUNT}}"),  # a placeholder left unfilled
        (
            "batch-main.yml",
            "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json\n",
            "",
        ),
    ],
)
def test_other_edits_are_planned_in_full(planner, name, old, new):
    based(planner)
    replace_in(planner.root, name, old, new)
    settle()
    planner.check("--json")


def test_a_file_added_or_removed_is_planned_in_full(planner):
    based(planner)
    text = (planner.root / "batch-main.yml").read_text()
    (planner.root / "batch-extra.yml").write_text(text.replace("name: main", "name: extra"))
    settle()
    made_in_full(planner)
    (planner.root / "notes.yml").write_text("just: notes\n")
    settle()
    made_in_full(planner)
    (planner.root / "batch-extra.yml").unlink()
    settle()
    made_in_full(planner)


def test_a_state_written_by_an_apply_is_planned_in_full(planner):
    based(planner)
    write_applied_state(planner.root)
    replace_in(planner.root, "batch-main.yml", "instance_count: 2", "instance_count: 3")
    settle()
    out = made_in_full(planner)
    assert "instance_count" in out[1]
    replace_in(planner.root, "batch-main.yml", "instance_count: 3", "instance_count: 4")
    settle()
    assert "instance_count" in remade(planner)[1]


def test_a_set_or_a_var_is_planned_in_full(planner):
    based(planner)
    replace_in(planner.root, "batch-main.yml", "instance_count: 2", "instance_count: 3")
    settle()
    base = (planner.root / BASE).read_bytes()
    with_set = planner.check("--set", "batch-main.yml:instance_count=6")
    assert "6" in with_set[1]
    assert planner.check("--var", "COUNT=1") != with_set
    assert (planner.root / BASE).read_bytes() == base  # no base is written for a plan with overrides
    remade(planner)


def _edited_deployments(root: Path) -> None:
    replace_in(root, "batch-main.yml", "instance_count: 2", "instance_count: 7")
    replace_in(root, "batch-main.yml", "request_timeout_ms: 20000", "request_timeout_ms: 25000")


def test_git_checkout_back_and_forth(planner):
    git = two_branches(planner.root, _edited_deployments)
    subprocess.run([*git, "checkout", "-q", "main"], check=True)
    settle()
    based(planner)
    on_main = planner.run("--json")
    subprocess.run([*git, "checkout", "-q", "other"], check=True)
    settle()
    on_other = remade(planner, "--json")
    assert on_other != on_main
    for branch, expected in [("main", on_main), ("other", on_other), ("main", on_main)]:
        subprocess.run([*git, "checkout", "-q", branch], check=True)  # maybe within the second: not kept
        assert planner.check("--json") == expected


def test_a_touched_file_with_the_same_content(planner):
    based(planner)
    first = planner.run()
    replace_in(planner.root, "batch-main.yml", "instance_count: 2", "instance_count: 3")
    settle()
    edited = remade(planner)
    for f in planner.root.glob("*.yml"):
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 5_000_000_000))
    assert planner.check() == edited
    settle()
    assert planner.check() == edited
    assert edited != first


class _Shell:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize(
    "hostile", ["foreign-key", "foreign-key-shell", "unsigned", "garbage", "link", "fifo", "folder", "truncated"]
)
def test_a_hostile_base_is_never_believed(planner, tmp_path, hostile):
    based(planner)
    replace_in(planner.root, "batch-main.yml", "instance_count: 2", "instance_count: 3")
    settle()
    expected = planner.uncached()
    base = planner.root / BASE
    genuine = base.read_bytes()
    header = genuine.partition(b"\n")[2].partition(b"\n")[0]
    lie = header + b"\n" + pickle.dumps(_Shell() if hostile.endswith("shell") else {"plan": "lie"})
    base.unlink()
    outside = tmp_path / "outside.pickle"
    if hostile.startswith("foreign-key"):  # a base signed on another machine, committed with the pull request
        base.write_bytes(sign(b"k" * 32, lie))
    elif hostile == "unsigned":
        base.write_bytes(lie)
    elif hostile == "garbage":
        base.write_bytes(b"\x00\xff{not json\n" * 1000)
    elif hostile == "link":
        outside.write_bytes(genuine)
        os.symlink(outside, base)
    elif hostile == "fifo":
        os.mkfifo(base)
    elif hostile == "folder":
        base.mkdir()
    elif hostile == "truncated":
        base.write_bytes(genuine[: len(genuine) // 2])
    assert planner.run() == expected
    assert not (planner.root / "pwned").exists()
    assert not (tmp_path / "pwned").exists()
    if hostile == "link":
        assert outside.read_bytes() == genuine  # untouched, not followed


def test_a_base_signed_by_the_user_but_of_another_layout_is_not_used(planner):
    """A base the user's own key signed whose pickle names a function (as no mlctl writes): refused, full plan."""
    from mlctl.signedfiles import user_key  # noqa: F401  (the key is the test user's, under XDG_CACHE_HOME)

    based(planner)
    key = (planner.user / "mlctl" / "cache.key").read_bytes()
    base = planner.root / BASE
    header = base.read_bytes().partition(b"\n")[2].partition(b"\n")[0]
    base.write_bytes(sign(key, header + b"\n" + pickle.dumps(_Shell())))
    replace_in(planner.root, "batch-main.yml", "instance_count: 2", "instance_count: 3")
    settle()
    made_in_full(planner)
    assert not (planner.root / "pwned").exists()


def test_a_copied_project_with_its_base(planner, tmp_path):
    based(planner)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(planner.root), str(copy)], check=True)  # with its .mlctl/
    replace_in(copy, "batch-main.yml", "instance_count: 2", "instance_count: 9")
    settle()
    there = Planner(copy, tmp_path)
    assert made_in_full(there) != planner.run()


@pytest.mark.parametrize("edited", [("batch-main.yml",), ("batch-main.yml", "green.yml")])  # green: not served
def test_the_plan_from_the_base_equals_the_full_plan_as_values(planner, monkeypatch, edited):
    """In one process, from another working folder: the configuration, state and plan made from the base are
    equal, as values (every resource with its source lines, every change), to those make_plan makes in full."""
    from mlctl.reconciler.operations import make_plan
    from mlctl.reconciler.planbase import remade
    from mlctl.reconciler.planmemo import PlanMemo
    from mlctl.projectpaths import Project
    from mlctl.schemas.documents import reads_kept

    from mlctl.cli import main

    write_applied_state(planner.root)  # a state file: its lineage (a new state's is drawn at random)
    settle()
    monkeypatch.setenv("XDG_CACHE_HOME", str(planner.user))
    assert main(["-C", str(planner.root), "plan", "--refresh=false"]) == 0  # in this process: the same sys.path
    settle()
    assert main(["-C", str(planner.root), "plan", "--refresh=false", "--json"]) == 0
    assert stamp(planner.root, BASE) is not None
    for name in edited:  # lines move too: the resource's source lines must be the new file's
        replace_in(planner.root, name, "instance_count:", "# a comment\ninstance_count: 4\n#")
    project = Project.at(planner.root)
    memo = PlanMemo.prepare(project, {"format": "text", "destroy": False, "replace": []})
    assert memo is not None and memo.lookup() is None
    with reads_kept(memo.read):
        made = remade(memo, set())
    if "green.yml" in edited:  # its inline environment is declared in it: the base cannot serve
        assert made is None
        return
    assert made is not None
    config, state, plan = make_plan(project, refresh_first=False)
    assert made[0] == config
    assert made[1] == state
    assert made[2] == plan
    assert plan.has_changes() and made[2].has_changes()
    for mine, full in zip(made[0].resources, config.resources):  # Source's field lines are not part of its ==
        assert (mine.source and dict(mine.source.fields)) == (full.source and dict(full.source.fields))
    moved = [r for r in made[0].resources if r.source and r.source.file in edited]
    assert len(moved) == 1 and moved[0].source.fields["instance_count"] == 9
