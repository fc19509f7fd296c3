"""Reading ahead (mlctl/schemas/readahead.py): on a cold load of many files a forked child parses the second half.
The documents, the diagnostics and the plan are those of a load without it (a real CLI process whose cache folder
cannot be made, so it has no key, no cache and no child), also with a syntax error, a duplicate key, a date and a
`--var` placeholder among the child's files, and a file edited after the child read it is read as it is now."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from goldens import cli

from mlctl.projectpaths import Project
from mlctl.schemas.discovery import discover, find_config_files
from mlctl.schemas.doccache import DocumentCache
from mlctl.schemas.documents import DISPLAY_ROOT, read_document, reads_kept
from mlctl.schemas.readahead import MIN_FILES, ReadAhead

ENDPOINTS = MIN_FILES // 3 + 10

DEPLOYMENT = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: {name}
endpoint_name: ep{i:03}
model: azureml:m:1
code_configuration:
  code: code/
  scoring_script: score.py
environment: azureml:env:1
instance_count: {count}
"""


def generate(root: Path) -> Path:
    """ENDPOINTS endpoints with blue and green deployments, one model, one environment (MIN_FILES files or more)."""
    (root / "code").mkdir(parents=True)
    (root / "code" / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")
    (root / "conda.yml").write_text("name: e\ndependencies:\n  - python=3.11\n")
    (root / "env.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
        "name: env\nversion: 1\nconda_file: conda.yml\nimage: python:3.11\n"
    )
    (root / "model").mkdir()
    (root / "model" / "weights.bin").write_bytes(b"\0" * 64)
    (root / "m.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\nname: m\nversion: 1\npath: model/\n"
    )
    for i in range(ENDPOINTS):
        (root / f"ep{i:03}.yml").write_text(
            "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
            f"name: ep{i:03}\nauth_mode: key\ntraffic:\n  blue: 90\n  green: 10\n"
        )
        for name in ("blue", "green"):
            (root / f"ep{i:03}-{name}.yml").write_text(DEPLOYMENT.format(name=name, i=i, count=1 + (name == "green")))
    assert len(find_config_files(Project.at(root))) >= MIN_FILES
    return root


def mlctl(root: Path, xdg: Path, *args: str) -> subprocess.CompletedProcess:
    return cli(root, xdg, *args, timeout=300)


def without_read_ahead(root: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """The same command where no cache key can be made (a file where the cache folder would be): no child."""
    blocked = tmp / "blocked"
    blocked.write_text("not a folder")
    return mlctl(root, blocked, *args)


@pytest.fixture
def root(tmp_path):
    return generate(tmp_path / "project")


def late(root: Path) -> list[Path]:
    """Files of the child's half (the second half of the sorted list)."""
    paths = find_config_files(Project.at(root))
    return paths[len(paths) // 2 + 5 :]


def load_docs(root: Path, cache) -> dict:
    token = DISPLAY_ROOT.set(str(root))
    try:
        docs, diags, failed = discover(Project.at(root), cache)
    finally:
        DISPLAY_ROOT.reset(token)
    return {
        "docs": {str(d.path): (k, d.data, d.lines, d.digest) for d, k in docs},
        "diags": [x.format() for x in diags],
        "failed": failed,
    }


def in_fresh_interpreter(root: Path, call: str) -> None:
    """Run `call` (a function of this module, given `root`) in a fresh interpreter: a child reads ahead only where
    no other thread runs (a fork copies one thread), and the pytest process may hold threads of earlier tests."""
    script = (
        f"import sys; from pathlib import Path; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"import test_read_ahead as t; t.{call}(Path({str(root)!r}))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def check_child_parses_half(root: Path) -> None:
    cache = DocumentCache(root / "documents.json", b"k" * 32)
    with_child = load_docs(root, cache)
    # the parent found the child's half in the cache: it parsed only the first half itself
    files = len(find_config_files(Project.at(root)))
    assert cache.hits >= files // 2 - 1 and cache.misses <= files - files // 2 + 1, (cache.hits, cache.misses, files)
    assert with_child == load_docs(root, None)


def test_the_child_parses_half_and_the_load_equals_one_without_it(root):
    in_fresh_interpreter(root, "check_child_parses_half")


def test_a_plan_with_problems_among_the_childs_files_says_what_a_plan_without_it_says(root, tmp_path):
    first, second, third, fourth = late(root)[:4]
    first.write_text(first.read_text() + "instance_count: [1\n")  # a syntax error
    second.write_text(second.read_text() + "name: again\n")  # a duplicate key
    third.write_text(third.read_text().replace("auth_mode: key", "auth_mode: key\ndescription: 2024-01-01"))
    fourth.write_text(fourth.read_text().replace("instance_count:", "instance_count: <COUNT>\nx:"))
    r = mlctl(root, tmp_path / "xdg", "plan", "--refresh=false", "--json", "--var", "COUNT=2")
    expected = without_read_ahead(root, tmp_path, "plan", "--refresh=false", "--json", "--var", "COUNT=2")
    assert r.returncode == expected.returncode == 1, (r.stderr, expected.stderr)
    assert "Traceback" not in r.stderr
    assert "YAML syntax error" in r.stderr and "duplicate key 'name'" in r.stderr
    assert (r.stdout, r.stderr) == (expected.stdout, expected.stderr)


def test_a_cold_plan_equals_a_plan_without_read_ahead(root, tmp_path):
    r = mlctl(root, tmp_path / "xdg", "plan", "--refresh=false", "--json")
    expected = without_read_ahead(root, tmp_path, "plan", "--refresh=false", "--json")
    assert r.returncode == expected.returncode == 0, (r.stderr, expected.stderr)
    assert json.loads(r.stdout) == json.loads(expected.stdout) and r.stderr == expected.stderr
    assert len(json.loads(r.stdout)["resource_changes"]) > MIN_FILES


def check_edited_after_the_child_read_it(root: Path) -> None:
    paths = find_config_files(Project.at(root))
    cache = DocumentCache(root / "documents.json", b"k" * 32)
    ahead = ReadAhead.begin(paths, cache, {})
    assert ahead is not None
    assert ahead.collect(cache) >= len(paths) // 2 - 1  # the child is done: what it read is in the cache
    edited = late(root)[0]
    edited.write_text(edited.read_text().replace("instance_count: 1", "instance_count: 7"))
    doc, problems = read_document(edited, cache)
    assert not problems and doc is not None and doc.data["instance_count"] == 7


def test_a_file_edited_after_the_child_read_it_is_read_as_it_is_now(root):
    in_fresh_interpreter(root, "check_edited_after_the_child_read_it")


def test_no_child_for_a_few_files_or_a_cache_that_holds_them(root):
    paths = find_config_files(Project.at(root))
    cache = DocumentCache(root / "documents.json", b"k" * 32)
    assert ReadAhead.begin(paths[: MIN_FILES - 1], cache, {}) is None
    assert ReadAhead.begin(paths, DocumentCache(None, None), {}) is None
    cache.entries = {str(i): [{}, []] for i in range(len(paths) // 2)}
    assert ReadAhead.begin(paths, cache, {}) is None


def test_bytes_the_memo_read_are_taken_once_and_only_during_that_plan(tmp_path):
    """`mlctl plan` hands the load the bytes its memo key was hashed from (reads_kept): each is taken once, in the
    block only; every other read reads the file."""
    f = tmp_path / "a.yml"
    f.write_text("name: disk\n")
    kept = {str(f): b"name: kept\n"}
    with reads_kept(kept):
        assert read_document(f)[0].data == {"name": "kept"}
        assert read_document(f)[0].data == {"name": "disk"}
    with reads_kept({str(f): b"name: left\n"}):
        pass
    assert read_document(f)[0].data == {"name": "disk"}
