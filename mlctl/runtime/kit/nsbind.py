"""Bind folders of this machine, read-only, into the mount namespace of a running confined fork server, at their own
paths: a deployment's new code snapshot or model version, so that the server forks its instances too.

Run by the host (root) as a short-lived helper, ``python -I -S nsbind.py PID FOLDER...`` (standard library only:
it starts in milliseconds): it clones each folder's mount here (`open_tree`), makes the clone read-only
(`mount_setattr`), enters the namespace of process PID (`setns`: a single-threaded process may), makes the mount
point inside a folder the server's namespace covers (its tmpfs; never on this machine's own file system: the host
binds only where its covers allow, `forkservers.ForkServer.bind`) and moves the clone there (`move_mount`). Exit 0
when all are bound; otherwise 1 and a line on stderr saying which one and why. Linux 5.12 or later.

``nsbind.py PID --at SOURCE TARGET [SOURCE TARGET...]`` binds each SOURCE of this machine at TARGET in that
namespace instead (a warm spare container's model and code at Azure's paths: `mlctl.runtime.docker.spares`).
"""

import ctypes
import os
import sys

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442  # (one number on every architecture)
OPEN_TREE_CLONE, AT_EMPTY_PATH, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x1000, 0x4
MOUNT_ATTR_RDONLY = 0x1
CLONE_NEWNS = 0x00020000
AT_FDCWD = -100


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]  # fmt: skip


def main(argv) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def call(what: str, *args) -> int:
        result = libc.syscall(*args)
        if result < 0:
            raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")
        return result

    pid, rest = int(argv[0]), argv[1:]
    if rest[:1] == ["--at"]:
        pairs = list(zip(rest[1::2], rest[2::2]))
    else:
        pairs = [(folder, folder) for folder in rest]
    clones = []
    for folder, target in pairs:
        try:
            fd = call("open_tree", SYS_OPEN_TREE, AT_FDCWD, folder.encode(), OPEN_TREE_CLONE | os.O_CLOEXEC)
            attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
            call("mount_setattr", SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr))
        except OSError as e:
            print(f"{folder}: {e}", file=sys.stderr)
            return 1
        clones.append((target, fd))
    ns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    if libc.setns(ns, CLONE_NEWNS) != 0:
        print(f"setns: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    os.umask(0o022)  # the folders made on the way: traversable by the server's uid
    for folder, fd in clones:
        try:
            os.makedirs(folder, exist_ok=True)
            call("move_mount", SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, folder.encode(), MOVE_MOUNT_F_EMPTY_PATH)
        except OSError as e:
            print(f"{folder}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
