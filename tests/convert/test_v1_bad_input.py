"""The bad v1 input corpus: tests/convert/bad/<case>/ holds inferenceconfig.json, maybe
deploymentconfig.json, and expect.json (message, file, line, field). Each case goes through the real
`mlctl convert v1`: exit 1, no traceback, the message at FILE:LINE and field, what to do, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_support import mlctl

BAD = Path(__file__).parent / "bad"
CASES = sorted(p.name for p in BAD.iterdir() if p.is_dir() and not p.name.startswith("_"))


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def convert_case(case: str, out: Path, *more: str):
    folder = BAD / case
    dc = ["--dc", "deploymentconfig.json"] if (folder / "deploymentconfig.json").exists() else []
    return mlctl(
        folder,
        "convert",
        "v1",
        "--name",
        "bad-case",
        "-m",
        "../_shared/model",
        "--ic",
        "inferenceconfig.json",
        *dc,
        "--out",
        str(out),
        *more,
        check=False,
    )


def test_corpus_is_large_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES)
def test_bad_v1_input_is_reported_with_file_line_and_field(case, tmp_path):
    exp = json.loads((BAD / case / "expect.json").read_text())
    before = listing(BAD)
    out = convert_case(case, tmp_path / "out")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert exp["message"] in out.stderr, out.stderr
    where = exp["file"] if exp["line"] is None else f"{exp['file']}:{exp['line']}"
    if "field" in exp:
        where += f", field '{exp['field']}'"
    assert f"at {where}" in out.stderr, out.stderr
    detail = out.stderr.split(f"at {where}\n", 1)[1].splitlines()[0]
    assert detail.startswith("  ") and len(detail.strip()) > 10, f"no line saying what to do: {out.stderr}"
    if "never_printed" in exp:
        assert exp["never_printed"] not in out.stderr
    assert not (tmp_path / "out").exists()  # nothing written
    assert listing(BAD) == before


def test_every_problem_of_both_files_is_reported_at_once(tmp_path):
    (tmp_path / "inferenceconfig.json").write_text('{"entryScript": "score.py", "cudaVerson": "11",\n"tags": {}}')
    (tmp_path / "deploymentconfig.json").write_text('{"computeType": "aci",\n"numReplica": 2,\n"cpu": 1}')
    (tmp_path / "m.bin").write_bytes(b"m")
    out = mlctl(
        tmp_path,
        "convert",
        "v1",
        "--name",
        "svc",
        "-m",
        "m.bin",
        "--ic",
        "inferenceconfig.json",
        "--dc",
        "deploymentconfig.json",
        check=False,
    )
    assert out.returncode == 1
    for where in [
        "inferenceconfig.json:1, field 'cudaVerson'",
        "inferenceconfig.json:2, field 'tags'",
        "deploymentconfig.json:2, field 'numReplica'",
        "deploymentconfig.json:3, field 'cpu'",
    ]:
        assert f"at {where}" in out.stderr, out.stderr
    assert "Did you mean 'cudaVersion'?" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploymentconfig.json", "inferenceconfig.json", "m.bin"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "no/such/model"], "-m no/such/model: no such file or folder"),
        (["-m", "../_shared/model", "-m", "../_shared/model/"], "two -m models would both be named 'model'"),
        (["-m", "../_shared/model", "--name", "9lives"], "'9lives' cannot name an endpoint"),
    ],
)
def test_bad_arguments_are_clear_errors(args, message, tmp_path):
    folder = BAD / "ic-spark-py"  # the arguments are checked first or alone: any case folder serves
    good_ic = tmp_path / "inferenceconfig.json"
    good_ic.write_text(
        (BAD / "ic-unknown-runtime" / "inferenceconfig.json")
        .read_text()
        .replace('"r"', '"python"')
        .replace("../_shared", str(BAD / "_shared"))
    )
    name = [] if "--name" in args else ["--name", "svc"]
    out = mlctl(
        folder, "convert", "v1", *name, *args, "--ic", str(good_ic), "--out", str(tmp_path / "out"), check=False
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert message in out.stderr, out.stderr
    assert not (tmp_path / "out").exists()
