"""The run folder's socket folders: each claimed by its live host's lock, swept once their host is dead.

Each host flocks `<tag>/.owner` for its life (the kernel drops the lock when the process dies, even
on SIGKILL), so a starting host can remove what killed ones left (standard library only). An instance
that must not see the tag folder (a container: its folder is bind-mounted into it) gets a folder of its
own inside it (`instance_folder`), so nothing an instance can write is in the tag folder: not another
instance's socket, not the `.owner` file that decides what a host sweeps.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import socket
import stat
import time
from pathlib import Path

from mlctl.waiting import Timeout, wait_until

from .runfiles import endpoint_tag, run_folder

OWNER = ".owner"  # in a tag folder; exclusively flock-ed by its live host (the kernel drops it on death)
TAG_NAME = re.compile(r"[0-9a-f]{10}")
ADMIN_NAME = re.compile(r"([0-9a-f]{10})-admin\.sock")
LEGACY_AGE_S = 600.0  # a tag folder without OWNER (older mlctl, or a host just starting) is spared this long
CLAIM_WAIT_S = 2.0  # a sweeper holds a folder's lock for milliseconds; a live twin host holds it for good
CLAIM_TRIES = 5

log = logging.getLogger("mlctl.host")


class FolderHeld(Exception):
    """Another live host of the same endpoint holds its socket folder's lock."""


class SocketFolder:
    """An endpoint's instance socket folder `<run folder>/<tag>/`, locked (`owner` fd) while its host lives."""

    def __init__(self, path: Path, owner: int | None):
        self.path, self.owner = path, owner

    def release(self) -> None:
        """Remove the folder (empty once every instance stopped), then drop the lock."""
        try:
            if self.owner is not None:
                os.unlink(self.path / OWNER)
            os.rmdir(self.path)
        except OSError:
            pass
        if self.owner is not None:
            os.close(self.owner)
            self.owner = None


def claim_socket_folder(data_dir, endpoint: str) -> SocketFolder:
    """Create and lock the endpoint's socket folder, emptied of the sockets a killed earlier host left.

    FolderHeld when another live host of the same endpoint holds the lock (two started at once)."""
    path = run_folder() / endpoint_tag(data_dir, endpoint)
    for _ in range(CLAIM_TRIES):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # (not Path.mkdir(exist_ok): a sweeper may remove it between its two checks)
            pass
        try:
            fd = os.open(path / OWNER, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue  # swept between mkdir and open: make it again
        if not _lock(fd, CLAIM_WAIT_S):
            os.close(fd)
            raise FolderHeld(path)
        if _holds(path, fd):
            stale = _empty(path)
            if stale:
                log.info("removed %d sockets left in %s by this endpoint's previous host", stale, path)
            return SocketFolder(path, fd)
        os.close(fd)  # a sweeper removed the folder while we waited: make it again
    log.warning("could not lock %s (swept %d times while starting); using it without its lock", path, CLAIM_TRIES)
    path.mkdir(mode=0o700, exist_ok=True)
    return SocketFolder(path, None)


def sweep_run_folder() -> int:
    """Remove the tag folders and `<tag>-admin.sock` files of hosts that are gone; never raises.

    Gone means: nobody holds the folder's lock (or, for a folder without one, from an older mlctl,
    it is older than LEGACY_AGE_S and none of its sockets accepts a connection). The sweeper takes
    the lock itself before removing, so a host starting at the same moment waits and makes a new
    folder. Symlinks and names that are not tags are left alone. Returns how many tags were swept."""
    try:
        root = run_folder()
        names = os.listdir(root)
    except OSError as e:
        log.warning("cannot sweep the run folder: %s", e)
        return 0
    tags = {n for n in names if TAG_NAME.fullmatch(n)} | {m[1] for n in names if (m := ADMIN_NAME.fullmatch(n))}
    swept = 0
    for tag in sorted(tags):
        try:
            swept += _sweep_tag(root, tag)
        except Exception as e:  # a start never fails because of leftovers
            log.warning("cannot sweep %s: %s", root / tag, e)
    if swept:
        log.info("swept the sockets of %d endpoint hosts that are gone from %s", swept, root)
    return swept


def _sweep_tag(root: Path, tag: str) -> int:
    folder, admin = root / tag, root / f"{tag}-admin.sock"
    owner = _take_if_gone(folder, admin)
    if owner is None:
        return 0
    try:
        if _is_socket(admin):
            admin.unlink()
        _empty(folder)
        os.unlink(folder / OWNER)
        try:
            os.rmdir(folder)
        except OSError as e:  # a host starting this moment made its lock file again (and may be done already)
            if e.errno not in (errno.ENOTEMPTY, errno.ENOENT):
                raise
        return 1
    finally:
        os.close(owner)


def _take_if_gone(folder: Path, admin: Path) -> int | None:
    """`folder`'s lock file, opened and locked by us, when no live or starting host has it; else None."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        if not _is_socket(admin) or _any_listening(None, admin):
            return None
        try:
            os.mkdir(folder, 0o700)  # an admin socket without its folder: hold the tag while it goes
        except FileExistsError:
            return None
        return _create_lock(folder)
    if not stat.S_ISDIR(info.st_mode):
        return None  # a symlink or file named like a tag is not ours
    try:
        fd = os.open(folder / OWNER, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if time.time() - info.st_mtime < LEGACY_AGE_S or _any_listening(folder, admin):
            return None
        return _create_lock(folder)
    if _lock(fd, 0) and _holds(folder, fd):
        return fd
    os.close(fd)
    return None


def _create_lock(folder: Path) -> int | None:
    try:
        fd = os.open(folder / OWNER, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return None  # a host starting this moment made it
    if _lock(fd, 0) and _holds(folder, fd):  # (another sweeper may have taken and removed it first)
        return fd
    os.close(fd)
    return None


def _lock(fd: int, wait: float) -> bool:
    """Exclusive flock on `fd`, trying for up to `wait` seconds."""

    def locked() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    try:
        return wait_until(locked, wait, "the socket folder's lock is free", interval=0.02)
    except Timeout:
        return False


def _holds(folder: Path, fd: int) -> bool:
    """Is the locked `fd` still the folder's lock file (not one a sweeper unlinked meanwhile)?"""
    try:
        here, locked = os.stat(folder / OWNER, follow_symlinks=False), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (locked.st_dev, locked.st_ino)


def _empty(folder: Path) -> int:
    """Remove what is in `folder` but its lock file (sockets, and instance folders with whatever their
    instance left in them, never following a link); the count removed."""
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name != OWNER:
                remove_instance_folder(Path(entry.path))
                removed += 1
    return removed


def instance_folder(socket_dir: Path, name: str, uid: int | None) -> Path:
    """A fresh folder `<socket_dir>/<name>/` for one instance's socket and output (what an earlier instance
    left there removed), mode 0700, owned by `uid` when the instance runs as a user of its own."""
    path = socket_dir / name
    remove_instance_folder(path)
    os.mkdir(path, 0o700)
    if uid is not None:
        os.chown(path, uid, uid)
    return path


def remove_instance_folder(path: Path) -> None:
    """Remove an instance's folder and all in it (a link is removed, never followed); gone already is fine."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)  # (fd-based on Linux: a link swapped in meanwhile is not followed)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _any_listening(folder: Path | None, admin: Path) -> bool:
    """Does a process accept connections on a socket in `folder`, or on `admin` (an older host alive)?"""
    paths = [str(admin)] if _is_socket(admin) else []
    if folder is not None:
        with os.scandir(folder) as entries:
            paths += [e.path for e in entries if _is_socket(Path(e.path))]
    for path in paths:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            try:
                s.connect(path)
                return True
            except (ConnectionRefusedError, FileNotFoundError):
                continue
            except OSError:
                return True  # busy or odd: assume alive
    return False
