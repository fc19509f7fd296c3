"""Source builds: environments install wheels only, and a package that has none is refused by name; a project
that allows source builds (`source_builds: true`) has them run in a sandbox with no network.

A source package runs its own code (`setup.py`, a build backend) as the user running mlctl, root on a CI
runner, during `apply`; a pull request can name one (`pkg @ file:///...`, or a package on an index that
has no wheel). So uv runs with `--only-binary :all:` unless the project's runtime settings say
`source_builds: true`; then the local runtime first installs what has wheels on the host (network, no
build: uv's cache gets the build backends too; what an index has only as an sdist is fetched as a file,
sourcefetch.py), and then runs the whole install again, offline, under
bubblewrap (Debian's `bubblewrap`): no network, no other process visible, all capabilities dropped, and
of the file system only the system folders, the interpreter and uv (read-only), the sources the
requirements name by `file://` (read-only), and the virtualenv and uv's cache (writable). Where bwrap is
not installed a source build is refused. Pure but for `bwrap_path` (looks for the binary).
"""

from __future__ import annotations

import os
import re
import shutil

SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/alternatives", "/etc/ld.so.cache")
BUILD_BACKENDS = ("setuptools", "wheel")  # fetched into uv's cache on the host for the offline builds
NAME = r"(?<![A-Za-z0-9._-])([A-Za-z][A-Za-z0-9._-]*)"  # a project name (one starting with a digit is a version)
SPEC = r"(?:[<>=!~]=?=?[^\s,`]+,?)+"  # its version specifiers: ==1.0, >=1.11.1,<=1.12.1
NO_WHEEL = (
    re.compile(r"Building source distributions for `?([A-Za-z0-9][A-Za-z0-9._-]*)`? (?:is|are) disabled"),
    re.compile(rf"`?{NAME}(?:\[[^\]]*\])?(?:{SPEC})?`? (?:has|have) no usable wheels"),
    re.compile(rf"`?{NAME}(?:\[[^\]]*\])?(?:{SPEC})?`? (?:is|was) marked as `?--no-build`?"),
    re.compile(r"Distribution `([A-Za-z0-9][A-Za-z0-9._-]*)"),
)
FILE_URL = re.compile(r"@\s*file://(/[^\s;]+)")


def no_wheel(log_text: str) -> str | None:
    """Pure: the package uv refused to build from source, from its output (None when that is not why it failed)."""
    lowered = log_text.lower()
    if not any(w in lowered for w in ("source distribution", "no usable wheels", "--no-build")):
        return None
    for pattern in NO_WHEEL:
        m = pattern.search(log_text)
        if m:
            return m.group(1)
    return None


def refusal(package: str | None, runtime: str) -> str:
    """Pure: the error for a package without a wheel: which, and the setting that allows building it."""
    which = f"{package} has no wheel" if package else "a package has no wheel"
    return (
        f"{which} for this platform, and mlctl installs wheels only: building a source package runs its code "
        f"on this machine. Use a version that has a wheel, or set `{runtime}: {{source_builds: true}}` in "
        f"mlctl.yaml to build it in a sandbox with no network"
    )


def file_sources(lines) -> list[str]:
    """Pure: the local paths the requirement lines name by `file://` URL (a sandboxed build reads them)."""
    return [m.group(1) for line in lines if (m := FILE_URL.search(line))]


def wheel_lines(lines) -> list[str]:
    """Pure: the requirement lines the host may install from wheels before a sandboxed source build (options
    and named requirements; not the direct references, which are the sources to build)."""
    return [line for line in lines if not FILE_URL.search(line)]


def bwrap_path() -> str | None:
    """bubblewrap's binary, None when it is not installed."""
    return shutil.which("bwrap")


def sandboxed(
    bwrap: str,
    cmd: list[str],
    writable: list[str],
    readable: list[str],
    env: dict | None = None,
    root: bool | None = None,
) -> list[str]:
    """Pure: `cmd` under bubblewrap with no network, its own process, IPC and host-name namespaces, dying with
    mlctl, seeing only the system folders and `readable` (read-only) and `writable`, a private /tmp and HOME,
    with `env` set (`root`: mlctl runs as root, then every capability is dropped; None: as it runs now)."""
    root = os.geteuid() == 0 if root is None else root
    args = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"]
    args += ["--new-session", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--setenv", "HOME", "/tmp"]
    for name, value in (env or {}).items():
        args += ["--setenv", name, value]
    if root:
        args += ["--cap-drop", "ALL"]
    for path in [*SYSTEM_FOLDERS, *readable]:
        if os.path.lexists(path):
            args += ["--ro-bind", path, path]
    for path in writable:
        args += ["--bind", path, path]
    return [*args, *cmd]


def interpreter_folders(executable: str) -> list[str]:
    """The folders an interpreter needs to run (its installation prefix, found from the binary's real path)."""
    real = os.path.realpath(executable)
    prefix = os.path.dirname(os.path.dirname(real))
    return [prefix] if prefix not in ("/usr", "/") else []


def uv_folders(uv: list[str]) -> list[str]:
    """The folder of the uv binary (read-only in the sandbox)."""
    return [os.path.dirname(os.path.realpath(uv[0]))] if uv else []
