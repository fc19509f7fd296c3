"""What a repository sent in a pull request can make `mlctl plan` do: nothing outside the project.

A repository may ship anything in `.mlctl/`: the lock, the state, the .gitignore, the secrets, the
data folder itself as a symbolic link to a file or folder the CI runner can write. mlctl refuses the
link (exit 1, the file named) and writes nothing through it (mlctl.privatefiles).
"""

from __future__ import annotations

import json
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


# plan --refresh=false takes no lock (it runs with read-only credentials, 77d8e8f): the lock is tested with a plan
# that refreshes, which takes it
@pytest.mark.parametrize("name, refresh", [("state.lock", "--refresh=true"), ("state.json", "--refresh=false")])
def test_a_lock_or_state_shipped_as_a_link_is_refused_and_its_target_untouched(repo, victim, name, refresh):
    os.symlink(victim, repo / ".mlctl" / name)
    r = mlctl("-C", str(repo), "plan", refresh)
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


NOT_A_HOST = r"""
import os, socket, sys
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(8)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 25\r\n"
                 b"Connection: close\r\n\r\n500 Internal Server Error")
    conn.close()
"""


@pytest.fixture
def not_a_host(tmp_path):
    """A process that answers every admin request with aiohttp's plain-text 500 (what the host sends
    when a handler fails); its command line names mlctl.runtime.host, as a host's does."""
    sock = tmp_path / "admin.sock"
    proc = subprocess.Popen(
        [sys.executable, "-c", NOT_A_HOST, str(sock), "mlctl.runtime.host"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    yield proc.pid, str(sock)
    proc.kill()
    proc.wait()


def test_a_plain_text_500_from_the_endpoint_host_is_never_a_traceback(repo, not_a_host):
    """Refresh asks each endpoint's host for its status; an answer that is not JSON is the host's
    error (HostError, an MlctlError), not a JSONDecodeError traceback."""
    from goldens import LINEAGE, loaded, portable_state, project, state_from_resources

    proj = project(repo)
    (repo / ".mlctl" / "state.json").write_text(
        portable_state(state_from_resources(loaded(proj).resources), repo).replace("$PROJECT", str(repo))
    )
    pid, sock = not_a_host
    (repo / ".mlctl" / "run").mkdir()
    for endpoint in ("shop", "batch"):
        (repo / ".mlctl" / "run" / f"{endpoint}.json").write_text(
            json.dumps({"pid": pid, "port": 1, "admin_socket": sock})
        )
    r = mlctl("-C", str(repo), "plan")
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0 and "Plan: " in r.stdout, r.stderr  # an unreachable host: what it ran is gone
    assert LINEAGE in (repo / ".mlctl" / "state.json").read_text()
