"""The confined command of a local instance (mlctl/runtime/kit/confinement.py): its argv as a pure function, and
real processes run with it as root: one pid throughout, its uid, what it sees and what it may write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from mlctl.runtime.host.sockets import instance_folder
from mlctl.runtime.kit import confinement
from mlctl.runtime.kit.confinement import Bind, confined_command, hidden_paths, needed_paths

UID = 0x4000_1234


def test_the_command_stages_binds_covers_outermost_first_and_drops_to_the_uid():
    binds = [Bind("/p/code"), Bind("/run/x/sock", writable=True), Bind("/p")]
    argv = confined_command(["python", "-m", "srv"], UID, binds, ["/tmp", "/p/.mlctl"], "/p/code")
    assert argv[:6] == ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh"]
    assert argv[-4:] == ["sh", "python", "-m", "srv"]
    script = argv[7].splitlines()
    staged = script.index('mount --bind /p/code "$S/0"')
    tmp = script.index("mount -t tmpfs -o mode=1777,size=256m mlctl-tmp /tmp")
    project = script.index('mount --move "$S/2" /p')
    data = script.index("mount -t tmpfs -o mode=0755,size=1m mlctl-hidden /p/.mlctl")
    code = script.index('mount --move "$S/0" /p/code')
    assert (
        staged < min(tmp, project) and project < data < code
    )  # a bind of the project does not show its data folder again
    assert "mount -o remount,bind,ro /p/code" in script and "mount -o remount,bind,ro /run/x/sock" not in script
    assert script[-1].startswith(f"exec setpriv --reuid={UID} --regid={UID} --clear-groups --inh-caps=-all")
    assert "--no-new-privs --pdeathsig=SIGKILL" in script[-1]
    assert "cd /p/code" in script


def test_paths_with_spaces_and_quotes_stay_one_argument():
    argv = confined_command(["py"], UID, [Bind("/a b/it's")], [], "/a b")
    assert "mount --bind '/a b/it'\"'\"'s' \"$S/0\"" in argv[7]


pytestmark_root = pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root (CI runs it as root)"
)


@pytestmark_root
def test_a_confined_process_keeps_its_pid_sees_only_its_binds_and_writes_only_its_socket_folder(tmp_path):
    project = tmp_path / "proj"
    data = project / ".mlctl"
    (data / "secrets").mkdir(parents=True)
    (data / "secrets" / "ep.json").write_text("{}")
    (project / "score.py").write_text("")
    (tmp_path / "elsewhere.txt").write_text("not for it")
    for folder in (tmp_path, project):
        folder.chmod(0o755)
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o700)
    folder = instance_folder(runs, "blue-g0-0", UID)
    spec = types.SimpleNamespace(python=sys.executable, code_dir=str(project), model_dir=str(project))
    binds = needed_paths(spec, folder)
    assert Bind(str(folder), writable=True) in binds and Bind(str(project)) in binds
    probe = f"""
import os, json
def can(f):
    try:
        f()
        return "yes"
    except OSError as e:
        return type(e).__name__
print(json.dumps({{
    "pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "secrets": can(lambda: open({str(data / "secrets" / "ep.json")!r}).read()),
    "elsewhere": can(lambda: open({str(tmp_path / "elsewhere.txt")!r}).read()),
    "code": can(lambda: open("score.py").read()),
    "write_code": can(lambda: open("new.py", "w").close()),
    "write_socket_folder": can(lambda: open({str(folder / "out")!r}, "w").write("x")),
    "tmp": sorted(os.listdir("/tmp")),
    "no_new_privs": open("/proc/self/status").read().split("NoNewPrivs:")[1].split()[0],
}}))
"""
    command = confined_command([sys.executable, "-c", probe], UID, binds, hidden_paths(binds, data), str(project))
    env = confinement.confined_env({"PATH": os.environ["PATH"], "PYTHONPATH": confinement.PACKAGE_PARENT})
    staged = {p for p in os.listdir("/run") if p.startswith("mlctl-stage.")}  # (other instances may be starting)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    seen = json.loads(out)
    assert seen["pid"] == proc.pid  # one process from unshare to the interpreter: signals and /proc reach it
    assert (seen["uid"], seen["gid"], seen["groups"]) == (UID, UID, [])
    assert seen["secrets"] in ("FileNotFoundError", "PermissionError")
    assert seen["elsewhere"] == "FileNotFoundError"  # the private /tmp shows only the way to its binds
    assert seen["code"] == "yes" and seen["write_code"] in ("OSError", "PermissionError")
    assert seen["write_socket_folder"] == "yes" and (folder / "out").read_text() == "x"
    assert seen["no_new_privs"] == "1"
    assert {p for p in os.listdir("/run") if p.startswith("mlctl-stage.")} <= staged  # its staging folder is gone
    assert (data / "secrets" / "ep.json").read_text() == "{}"  # nothing of the host's view changed


def test_the_outermost_folder_others_cannot_traverse_is_covered_on_the_way_to_a_bind(tmp_path):
    closed = tmp_path / "home"
    (closed / "venv" / "lib").mkdir(parents=True)
    closed.chmod(0o700)
    (tmp_path / "data").mkdir()
    covers = hidden_paths([Bind(str(closed / "venv"))], tmp_path / "data")
    assert covers[0] == "/tmp" and str(tmp_path / "data") in covers
    on_the_way = [c for c in covers if c != "/tmp" and (str(closed) + "/").startswith(c + "/")]
    assert len(on_the_way) == 1 and not os.stat(on_the_way[0]).st_mode & 0o001  # one, outermost, closed
    assert not [c for c in covers if c.startswith(str(closed / "venv"))]  # nothing inside the bind is covered


@pytestmark_root
def test_a_step_that_fails_leaves_no_staging_folder(tmp_path):
    staged = {p for p in os.listdir("/run") if p.startswith("mlctl-stage.")}
    command = confined_command(["true"], UID, [Bind(str(tmp_path / "gone"))], ["/tmp"], "/")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "gone" in done.stderr  # mount says which path
    assert {p for p in os.listdir("/run") if p.startswith("mlctl-stage.")} <= staged


def test_a_data_folder_not_made_yet_is_not_covered(tmp_path):
    assert str(tmp_path / ".mlctl") not in hidden_paths([Bind(str(tmp_path))], tmp_path / ".mlctl")
    (tmp_path / ".mlctl").mkdir()
    assert str(tmp_path / ".mlctl") in hidden_paths([Bind(str(tmp_path))], tmp_path / ".mlctl")


def test_missing_tools_lists_what_is_not_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert confinement.missing_tools() == list(confinement.TOOLS)
