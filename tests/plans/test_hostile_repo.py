"""What a repository sent in a pull request can make `mlctl plan` do: nothing outside the project.

A repository may ship anything in `.mlctl/`: the lock, the state, the .gitignore, the secrets, the
data folder itself as a symbolic link to a file or folder the CI runner can write. mlctl refuses the
link (exit 1, the file named) and writes nothing through it (mlctl.privatefiles).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from goldens import HERE, copy_project

VICTIM = "precious: the runner's own file\n"


def mlctl(*args):
    return subprocess.run([sys.executable, "-m", "mlctl.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def repo(tmp_path):
    root = copy_project(HERE / "_project", tmp_path / "project")
    (root / ".mlctl").mkdir()
    return root


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM)
    return path


def refused(r, name: str):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert f"{name} is a symbolic link" in r.stderr, r.stderr


@pytest.mark.parametrize("name", ["state.lock", "state.json"])
def test_a_lock_or_state_shipped_as_a_link_is_refused_and_its_target_untouched(repo, victim, name):
    os.symlink(victim, repo / ".mlctl" / name)
    r = mlctl("-C", str(repo), "plan", "--refresh=false")
    refused(r, name)
    assert victim.read_text() == VICTIM


def test_a_dangling_gitignore_link_creates_nothing(repo, tmp_path):
    target = tmp_path / "outside-bashrc"
    os.symlink(target, repo / ".mlctl" / ".gitignore")
    r = mlctl("-C", str(repo), "plan", "--refresh=false")
    refused(r, ".gitignore")
    assert not target.exists()


def test_a_data_folder_linked_out_of_the_project_is_refused(repo, tmp_path):
    (repo / ".mlctl").rmdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, repo / ".mlctl")
    r = mlctl("-C", str(repo), "plan", "--refresh=false")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "is a symbolic link out of the project" in r.stderr, r.stderr
    assert list(outside.iterdir()) == []


def test_a_data_folder_linked_within_the_project_is_used(repo):
    (repo / ".mlctl").rmdir()
    (repo / "mlctl-data").mkdir()
    os.symlink("mlctl-data", repo / ".mlctl")
    r = mlctl("-C", str(repo), "plan", "--refresh=false")
    assert r.returncode == 0, r.stderr
    assert (repo / "mlctl-data" / ".gitignore").is_file()


def test_a_fifo_as_the_state_file_is_refused_not_waited_on(repo):
    os.mkfifo(repo / ".mlctl" / "state.json")
    r = mlctl("-C", str(repo), "plan", "--refresh=false")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "state.json is not a regular file" in r.stderr, r.stderr
