"""Files mlctl writes or reuses in a project's data folder, never through a symbolic link.

A repository may ship anything under `.mlctl/` (a symbolic link as the lock, the state, the secrets
folder, the data folder itself), and `mlctl plan` runs in pull-request jobs on such repositories:
every file here is opened with O_NOFOLLOW (a link is refused, with the file named, never followed),
written through a fresh temporary file (O_EXCL, a random name) renamed into place, and read only
when it is a regular file (a FIFO would hang the reader).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError

NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def link_refused(path: str | os.PathLike, what: str = "file") -> MlctlError:
    """Pure: the error for a symbolic link where mlctl keeps one of its own files."""
    return MlctlError(
        Diagnostic(
            f"{path} is a symbolic link; mlctl does not follow one where it keeps its {what}",
            "Remove the link (mlctl creates the file itself), or pass --state FILE to keep mlctl's files "
            "in another folder.",
            file=str(path),
        )
    )


def _not_regular(path, what: str) -> MlctlError:
    return MlctlError(
        Diagnostic(
            f"{path} is not a regular file; mlctl keeps its {what} there",
            "Remove it; mlctl creates the file itself.",
            file=str(path),
        )
    )


def open_private(path: str | os.PathLike, flags: int, mode: int = 0o600, what: str = "file") -> int:
    """os.open(path, flags | O_NOFOLLOW | O_CLOEXEC, mode); MlctlError when `path` is a symbolic link or
    is not a regular file (a FIFO or a device: never waited on). Other OSErrors (a folder: EISDIR) propagate."""
    try:
        fd = os.open(path, flags | NOFOLLOW | os.O_NONBLOCK, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise link_refused(path, what) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_regular(path, what)
    os.set_blocking(fd, True)
    return fd


def read_private(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of a regular file of mlctl's (FileNotFoundError when absent; MlctlError when a link or
    not a regular file)."""
    fd = open_private(path, os.O_RDONLY, what=what)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def read_json(data: bytes | str):
    """Pure: the JSON document `data` holds; ValueError when it is not JSON, or nested so deeply that the
    parser would run out of stack (a file in a repository's `.mlctl/` may be made so, to crash mlctl)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def write_atomic(path: str | os.PathLike, data: bytes, mode: int = 0o600, what: str = "file") -> None:
    """Replace `path` with `data` all at once: a new temp file in the same folder (O_EXCL, random name,
    never a link), fsync, rename, fsync the folder. MlctlError when `path` is a symbolic link (refused,
    not replaced: the user learns what was there)."""
    path = Path(path)
    if path.is_symlink():
        raise link_refused(path, what)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
            break
        except FileExistsError:
            continue
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; the mode is what the caller asked
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def ensure_folder(
    path: str | os.PathLike, mode: int | None = None, what: str = "files", base: str | os.PathLike | None = None
) -> Path:
    """Make the folder `path`; MlctlError when it, or any folder between `base` (the data folder) and
    it, is a symbolic link (NotADirectoryError when one is a file). Without `base` only `path` itself is
    checked (its parents are made as needed). `mode`: set on `path` (0700 for secrets), never through a link."""
    path = Path(path)
    if base is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        chain = [path]
    else:
        Path(base).mkdir(parents=True, exist_ok=True)
        parts = path.relative_to(base).parts
        chain = [Path(base).joinpath(*parts[:n]) for n in range(1, len(parts) + 1)]
    for folder in chain:
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        info = os.lstat(folder)
        if stat.S_ISLNK(info.st_mode):
            raise link_refused(folder, what)
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    if mode is not None and stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)
    return path


def create_once(path: str | os.PathLike, data: bytes, mode: int = 0o644, what: str = "file") -> None:
    """Write `data` to `path` unless something is there already (a link there is refused, not followed)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
    except FileExistsError:
        if os.path.islink(path):
            raise link_refused(path, what) from None
        return
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def check_data_folder(path: str | os.PathLike) -> Path:
    """The data folder `path` (`PROJECT/.mlctl`), made if missing; MlctlError when it is a symbolic link
    out of the folder it sits in (the project) or not a folder. A link within the project is used."""
    path = Path(path)
    if path.is_symlink():
        home = path.parent.resolve()
        target = path.resolve()
        if target != home and home not in target.parents:
            raise MlctlError(
                Diagnostic(
                    f"{path} is a symbolic link out of the project (to {os.readlink(path)}); mlctl does not keep "
                    "its state, lock and secrets through it",
                    "Remove the link (mlctl creates the folder itself), or pass --state FILE to keep mlctl's files "
                    "in another folder.",
                    file=str(path),
                )
            )
        path = target
    return ensure_folder(path, what="state and secrets")
