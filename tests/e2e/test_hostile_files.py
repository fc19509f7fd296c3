"""Files a pull request can commit, through the real CLI (issue 24's small ones): JSON nested deeply enough to
exhaust the parser's stack in `.mlctl/hashcache.json` (only a cache: ignored), `.mlctl/state.json` (a clear
error naming the file) and a v1 conda dependency list (an error at its file and field); and a saved plan that
is a FIFO, refused at once rather than waited on with the state lock held."""

from __future__ import annotations

import json
import os

from e2e_support import SplitProject, mlctl

DEPTH = 100_000


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr, proc.stderr[-2000:]


def test_deeply_nested_json_in_the_data_folder_is_no_traceback(tmp_path):
    p = SplitProject(tmp_path / "proj", "deep")
    p.write({"blue": 100}, {"blue": {}})
    data = p.root / ".mlctl"
    data.mkdir()
    (data / "hashcache.json").write_text("[" * DEPTH + "]" * DEPTH)
    planned = mlctl(p.root, "plan", "--refresh=false", check=False)
    no_traceback(planned)
    assert planned.returncode == 0 and "4 to add" in planned.stdout  # the cache is only a cache
    (data / "hashcache.json").unlink()
    (data / "state.json").write_text('{"a":' * DEPTH + "1" + "}" * DEPTH)
    refused = mlctl(p.root, "plan", "--refresh=false", check=False)
    no_traceback(refused)
    assert refused.returncode == 1 and "nested too deeply" in refused.stderr
    assert str(data / "state.json") in refused.stderr


def test_a_deeply_nested_v1_conda_dependency_list_is_an_error_at_its_field(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text("def init():\n    pass\n\ndef run(d):\n    return d\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.txt").write_text("w")
    deep: object = "numpy"
    for _ in range(900):  # parses as JSON; writing it out as a conda file would recurse past the stack
        deep = [deep]
    ic = {
        "entryScript": "score.py",
        "sourceDirectory": "src",
        "environment": {"python": {"condaDependencies": {"dependencies": ["python=3.11", {"pip": deep}]}}},
    }
    (tmp_path / "inferenceconfig.json").write_text(json.dumps(ic))
    out = tmp_path / "out"
    proc = mlctl(
        tmp_path,
        "convert",
        "v1",
        "--name",
        "deep",
        "-m",
        "model",
        "--ic",
        "inferenceconfig.json",
        "--out",
        str(out),
        check=False,
    )
    no_traceback(proc)
    assert proc.returncode == 1 and "nested more than 16 levels deep" in proc.stderr
    assert "inferenceconfig.json:1" in proc.stderr and "environment.python.condaDependencies" in proc.stderr
    assert not out.exists()


def test_apply_of_a_fifo_is_refused_before_the_state_lock(tmp_path):
    p = SplitProject(tmp_path / "proj", "fifo")
    p.write({"blue": 100}, {"blue": {}})
    os.mkfifo(p.root / "plan.out")
    proc = mlctl(p.root, "apply", "plan.out", check=False, timeout=60)  # main waited on it for ever, locked
    no_traceback(proc)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr
    assert not (p.root / ".mlctl" / "state.lock").exists()  # refused before the lock was taken
