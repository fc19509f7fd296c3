"""Real users' files: each case of tests/corpus/cases/ validated, planned, applied, scored with the example's
own sample request, and destroyed by the real CLI; the endpoint's answer equals the scoring script called
in-process in the same environment. A case that needs a GPU or a cloud identity instead expects the
documented error it records (at most 3 such cases). Layout and fields: tests/corpus/README.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_support import CASES, LICENSES, Case, all_cases, environment_python, in_process, mlctl, prepare

CORPUS = all_cases()


def test_corpus_is_real_and_recorded():
    """At least 12 cases from both repositories, each with its commit, license notice and every file it names;
    at most 3 expect an error, each for a GPU or a cloud identity."""
    assert len(CORPUS) >= 12, [c.name for c in CORPUS]
    assert {c.source["repository"] for c in CORPUS} == LICENSES
    for case in CORPUS:
        src = case.source
        assert len(src["commit"]) == 40 and int(src["commit"], 16) >= 0, case.name
        assert "MIT License" in (case.folder / src["license"]).read_text(), case.name
        for path in [*src["files"], *(src.get("added") or {})]:
            assert (case.folder / "files" / path).is_file(), (case.name, path)
        assert case.invoke or case.expect_error, case.name
    errors = [c for c in CORPUS if c.expect_error]
    assert len(errors) <= 3 and all(c.expect_error["why"] in ("gpu", "cloud identity") for c in errors)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_case(case: Case, tmp_path: Path, mlctl_cache: Path):
    project = prepare(case, tmp_path / "files", mlctl_cache)
    files = [a for f in case.config for a in ("-f", f)]
    if case.convert:
        mlctl(project, "convert", "v1", *case.convert)
    try:
        if case.expect_error:
            _expect_error(case, project, files)
            return
        mlctl(project, *files, "validate", *case.args)
        plan = mlctl(project, *files, "plan", *case.args)
        assert "to add" in plan.stdout, plan.stdout
        mlctl(project, *files, "apply", "--auto-approve", *case.args)
        for n, call in enumerate(case.invoke):
            header = ["--deployment", call.deployment] if call.deployment else []
            answer = mlctl(project, *files, "invoke", call.endpoint, "--request-file", call.request, *header)
            served = json.loads(answer.stdout)
            python = environment_python(project, call.endpoint, call.deployment or _only_deployment(project))
            assert served == in_process(python, project, call, tmp_path / f"inprocess-{n}"), case.name
    finally:
        mlctl(project, *files, "destroy", "--auto-approve", *case.args, check=False)
    state = json.loads((project / ".mlctl" / "state.json").read_text())
    assert state["resources"] == {}, list(state["resources"])


def _only_deployment(project: Path) -> str:
    state = json.loads((project / ".mlctl" / "state.json").read_text())["resources"]
    names = [k.split(".", 2)[2] for k in state if k.startswith("deployment.")]
    assert len(names) == 1, names
    return names[0]


def _expect_error(case: Case, project: Path, files: list[str]) -> None:
    """The documented error: the command named fails with exit 1, no traceback, every expected phrase."""
    want = case.expect_error
    for command in ("validate", "plan", "apply"):
        args = ["apply", "--auto-approve"] if command == "apply" else [command]
        out = mlctl(project, *files, *args, *case.args, check=command != want["command"])
        if command == want["command"]:
            assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
            for phrase in want["contains"]:
                assert phrase in out.stdout + out.stderr, (phrase, out.stderr)
            return


def test_cases_folder_holds_only_cases():
    assert all((p / "case.yml").is_file() for p in CASES.iterdir() if p.is_dir())
