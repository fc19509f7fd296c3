"""How a local instance runs under its deployment's own uid when mlctl runs as root: the command that confines it.

The instance's process keeps one PID throughout (an exec chain, so signals, /proc usage, cgroups and PDEATHSIG
keep working): `unshare` gives it a private mount namespace, a shell script there hides what the deployment must
not see and binds, read-only, what it needs, then `setpriv` drops to the uid with no capabilities and
`no_new_privs` and execs the scoring server. What it sees:

- a private `/tmp` (tmpfs; HOME and TMPDIR point at it, as in the docker runtime);
- the project's data folder (`.mlctl`: secrets, state, run records, logs, other deployments' snapshots and
  sockets) replaced by an empty tmpfs, and every folder it could not traverse anyway (`/root`, 0700) by an
  empty one it can, so its needed paths can be reached;
- read-only: its virtualenv, the interpreter's prefix, mlctl's package parent (PYTHONPATH), its code snapshot
  and model folder; read-write: its own socket folder (owned by its uid, mode 0700, one per instance).

`needed_paths` and `hidden_paths` say what (they read the file system's modes); `confined_command` is pure and
builds the argv; `processlauncher.Process.spawn` runs it. docs/threat-model.md says what this leaves open.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlctl.runtime.kit.servercommand import PACKAGE_PARENT

OPT_OUT = "mlctl"  # `local: {instance_user: mlctl}`: instances run as mlctl's own user, unconfined
PRIVATE_TMP = "/tmp"
TMP_SIZE = "256m"


@dataclass(frozen=True)
class Bind:
    """A folder the instance needs, mounted at its own path: read-only unless `writable`."""

    path: str
    writable: bool = False


def is_confined(spec) -> bool:
    """Do instances of `spec` run under a uid of their own? Only when mlctl runs as root and the project did
    not opt out (`local.instance_user: mlctl`, carried in the spec's `launch`)."""
    return os.geteuid() == 0 and (spec.launch or {}).get("instance_user") != OPT_OUT


TOOLS = ("unshare", "setpriv", "mount", "umount", "mktemp")  # util-linux and coreutils


def missing_tools() -> list[str]:
    """The programs the confined command runs that this machine lacks (on PATH)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@functools.cache
def why_not_here() -> str | None:
    """Why confined instances cannot start on this machine (tools missing, or no right to make a mount namespace,
    as in a container without CAP_SYS_ADMIN), or None. Asked once per process: it runs `unshare` once."""
    missing = missing_tools()
    if missing:
        return f"it lacks {', '.join(missing)} (util-linux) on PATH"
    try:
        tried = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "true"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`unshare --mount` failed ({e})"
    if tried.returncode != 0:
        said = tried.stderr.decode(errors="replace").strip().splitlines()
        return f"it may not make a mount namespace (`unshare --mount`: {said[-1] if said else tried.returncode})"
    return None


def needed_paths(spec, socket_folder: Path) -> list[Bind]:
    """The folders an instance of `spec` (python, code_dir, model_dir) needs, its socket folder writable."""
    python = Path(spec.python)
    venv = python.parent.parent  # <venv>/bin/python, unresolved: the venv's own folder
    prefix = Path(os.path.realpath(python)).parent.parent  # the interpreter's installation
    found = [venv, prefix, Path(PACKAGE_PARENT), Path(spec.code_dir), Path(spec.model_dir)]
    binds = {os.path.abspath(p): Bind(os.path.abspath(p)) for p in found if p.is_dir()}
    folder = os.path.abspath(socket_folder)
    binds[folder] = Bind(folder, writable=True)
    return list(binds.values())


def hidden_paths(binds: list[Bind], data_dir: Path) -> list[str]:
    """The folders covered by an empty tmpfs: the private /tmp, the data folder when it exists (even inside a bind:
    a bind of a folder holding it, such as a project root used as code, must not show it again), and the outermost
    folder on the way to each bind that others may not traverse (no o+x)."""
    data = os.path.abspath(data_dir)
    covers = {PRIVATE_TMP} | ({data} if os.path.isdir(data) else set())  # (none yet: nothing to hide, no mount point)
    for bind in binds:
        for ancestor in reversed(Path(bind.path).parents):
            if ancestor != Path("/") and _is_closed(ancestor):
                covers.add(str(ancestor))
                break
    return sorted(covers, key=_depth)


def _is_closed(folder: Path) -> bool:
    try:
        return not os.stat(folder).st_mode & stat.S_IXOTH
    except OSError:
        return False


def _depth(path: str) -> tuple[int, str]:
    return (len(Path(path).parts), path)


def confined_command(command: list[str], uid: int, binds: list[Bind], covers: list[str], workdir: str) -> list[str]:
    """Pure: `command` run under `uid` in a private mount namespace that shows `binds` over `covers` (see the
    module docstring), from `workdir`; `Process.spawn` runs it."""
    q = shlex.quote
    lines = [
        "set -e",
        "umask 022",  # the folders made on the way to the binds: traversable by the uid
        "S=$(mktemp -d /run/mlctl-stage.XXXXXX)",
        'trap \'umount "$S" 2>/dev/null; rmdir "$S"\' EXIT',  # a failed step leaves no folder in /run
        'mount -t tmpfs -o mode=0700,size=1m mlctl-stage "$S"',
    ]
    for i, bind in enumerate(binds):  # staged first: a bind source must be reached before the covers hide it
        lines += [f'mkdir "$S/{i}"', f'mount --bind {q(bind.path)} "$S/{i}"']
    steps = [(path, "cover", -1) for path in covers] + [(b.path, "bind", i) for i, b in enumerate(binds)]
    for path, kind, i in sorted(steps, key=lambda s: (*_depth(s[0]), s[1] == "bind")):  # outermost first
        if kind == "cover":
            mode, size = ("1777", TMP_SIZE) if path == PRIVATE_TMP else ("0755", "1m")
            name = "mlctl-tmp" if path == PRIVATE_TMP else "mlctl-hidden"
            lines += [f"mkdir -p {q(path)}", f"mount -t tmpfs -o mode={mode},size={size} {name} {q(path)}"]
        else:
            lines += [f"mkdir -p {q(path)}", f'mount --move "$S/{i}" {q(path)}']
            if not binds[i].writable:
                lines.append(f"mount -o remount,bind,ro {q(path)}")
    lines += [
        'umount "$S"',
        'rmdir "$S"',
        "trap - EXIT",
        f"cd {q(workdir)}",
        f"exec setpriv --reuid={uid} --regid={uid} --clear-groups --inh-caps=-all --bounding-set=-all "
        '--no-new-privs --pdeathsig=SIGKILL -- "$@"',
    ]
    script = "\n".join(lines)
    return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", *command]


def confined_env(env: dict) -> dict:
    """Pure: an instance's environment as a confined instance needs it: HOME and TMPDIR in its private /tmp."""
    return {**env, "HOME": PRIVATE_TMP, "TMPDIR": PRIVATE_TMP}
