"""Symbolic links and paths in models and code, as a pull request can send them, through the real CLI (issue 24):
nothing outside the project's boundary (the git work tree holding it, else the -C folder) is read, walked or
printed. A link out, a loop, or an artifact path outside is a validate error with file, line and field; a link
inside is followed once; Azure's examples' `../model-1/model/` keeps working inside its repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: links
auth_mode: key
traffic: {blue: 100}
"""
DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: links
model:
  path: MODEL
code_configuration:
  code: CODE
  scoring_script: score.py
instance_count: 1
"""


def mlctl(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def project(repo: Path, model: str = "model/", code: str = "code/", git: bool = True) -> Path:
    """`repo/endpoint/` (the -C folder) in a git work tree `repo/` (a `.git` folder is all that makes one)."""
    root = repo / "endpoint"
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.txt").write_text("w")
    (root / "code").mkdir()
    (root / "code" / "score.py").write_text("def init():\n    pass\n\ndef run(d):\n    return d\n")
    (root / "endpoint.yml").write_text(ENDPOINT)
    (root / "blue.yml").write_text(DEPLOYMENT.replace("MODEL", model).replace("CODE", code))
    if git:
        (repo / ".git").mkdir()
    return root


def refused(proc, *words: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


def test_a_link_to_the_root_is_refused_without_walking_the_disk(tmp_path):
    root = project(tmp_path / "repo")
    (root / "model" / "root").symlink_to("/")
    proc = mlctl(root, "plan", "--refresh=false")
    refused(proc, "model/root is a symbolic link out of the project (to /)", "blue.yml:5", "model.path")


def applied(root: Path) -> None:
    """The state as if the project were applied as it is now (its code's files recorded, so a plan lists
    the files a change adds, as on a pull request against a deployed main)."""
    from goldens import state_from_resources

    from mlctl.projectpaths import Project
    from mlctl.schemas.load import load_config
    from mlctl.state.statefile import write_state

    (root / ".mlctl").mkdir(exist_ok=True)
    write_state(root / ".mlctl" / "state.json", state_from_resources(load_config(Project.at(root)).resources))


def test_a_link_to_secrets_is_never_printed_into_a_pull_request_comment(tmp_path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    root = project(tmp_path / "repo")
    applied(root)
    (root / "code" / "helper.py").write_text("X = 1\n")
    shown = mlctl(root, "plan", "--refresh=false", "--markdown")
    assert shown.returncode == 0 and "helper.py" in shown.stdout, shown.stderr  # an added file is listed
    (root / "code" / "leak").symlink_to(home)
    proc = mlctl(root, "plan", "--refresh=false", "--markdown")
    refused(proc, "code/leak is a symbolic link out of the project", "blue.yml:7", "code_configuration.code")
    assert "id_rsa" not in proc.stdout + proc.stderr and "OPENSSH" not in proc.stdout + proc.stderr
    valid = mlctl(root, "validate")
    refused(valid, "code/leak is a symbolic link out of the project")


def test_a_loop_is_refused_and_a_link_inside_is_followed_once(tmp_path):
    repo = tmp_path / "repo"
    root = project(repo)
    (repo / "shared").mkdir()
    (repo / "shared" / "util.py").write_text("X = 1\n")
    (root / "code" / "lib").symlink_to(repo / "shared")  # inside the work tree: followed
    (root / "code" / "lib2").symlink_to(repo / "shared")  # the same folder again: not walked twice
    applied(root)
    (repo / "shared" / "more.py").write_text("Y = 2\n")
    ok = mlctl(root, "plan", "--refresh=false", "--markdown")
    assert ok.returncode == 0, ok.stderr
    assert "lib/more.py" in ok.stdout and "lib2/more.py" not in ok.stdout
    (root / "model" / "loop").symlink_to(root / "model")
    refused(mlctl(root, "plan", "--refresh=false"), "model/loop is a symbolic link to a folder that holds it")


def test_paths_outside_the_boundary_are_refused_and_azures_layout_works(tmp_path):
    repo = tmp_path / "repo"
    root = project(repo, model="../model-1/model/")  # Azure's examples: a sibling folder of the work tree
    (repo / "model-1" / "model").mkdir(parents=True)
    (repo / "model-1" / "model" / "m.pkl").write_text("m")
    ok = mlctl(root, "plan", "--refresh=false")
    assert ok.returncode == 0, ok.stderr

    bare = tmp_path / "bare"  # no git: the -C folder is the boundary
    outside = project(bare, model="../model-1/model/", git=False)
    (bare / "model-1" / "model").mkdir(parents=True)
    (bare / "model-1" / "model" / "m.pkl").write_text("m")
    refused(mlctl(outside, "validate"), "is outside the project", "blue.yml:5", "model.path")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "score.py").write_text("def init():\n    pass\n")
    absolute = project(tmp_path / "abs", code=f"{elsewhere}/")
    refused(mlctl(absolute, "validate"), f"{elsewhere} is outside the project", "blue.yml:7")
    assert not os.path.exists(absolute / ".mlctl" / "code")


def test_convert_v1_reads_nothing_outside_the_project(tmp_path):
    import json

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text("def init():\n    pass\n\ndef run(d):\n    return d\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.txt").write_text("w")
    ic = {"entryScript": "score.py", "sourceDirectory": "/", "runtime": "python"}
    (tmp_path / "root.json").write_text(json.dumps(ic, indent=2))
    args = ("convert", "v1", "--name", "svc", "-m", "model", "--out", "out")
    refused(mlctl(tmp_path, *args, "--ic", "root.json"), "sourceDirectory / is outside the project", "root.json:3")
    (tmp_path / "src" / "root").symlink_to("/")
    (tmp_path / "src.json").write_text(json.dumps({**ic, "sourceDirectory": "src"}, indent=2))
    proc = mlctl(tmp_path, *args, "--ic", "src.json")
    refused(proc, "src/root is a symbolic link out of the project (/)", "src.json:3", "sourceDirectory")
    assert not (tmp_path / "out").exists()
