"""Where an endpoint host keeps its sockets and run record (paths and small files only, standard library).

Unix socket paths are limited to 107 bytes, so instance sockets (and the admin socket when the
data folder is deep) live in a short per-user run folder `/tmp/mlctl-<uid>/` (mode 0700);
`DATA_DIR/run/ENDPOINT.json` records where: `{pid, port, admin_socket, started, auth_mode, data_dir}`. A record
names the data folder it belongs to, and is read only there: in a copied project (`cp -r` copies `.mlctl/`)
the original's records are not this folder's, so no command there reaches the original's endpoint host.
The socket folders' claim and sweep are in sockets.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

TWIN_EXIT = 4  # the host's exit code when another live host of its endpoint holds the socket folder
SOCKET_PATH_MAX = 100  # bytes; AF_UNIX sun_path is 108 including the NUL, keep a margin


def run_folder() -> Path:
    """The per-user short folder for sockets, created 0700; refuses one another user could write."""
    path = Path(os.environ.get("MLCTL_RUN_FOLDER") or f"/tmp/mlctl-{os.getuid()}")
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{path} must be a folder owned by uid {os.getuid()} with mode 0700; "
            f"remove it (or set MLCTL_RUN_FOLDER) and try again"
        )
    return path


def endpoint_tag(data_dir, endpoint: str) -> str:
    """A short stable tag for (data folder, endpoint), used in socket names."""
    key = f"{os.path.realpath(data_dir)}\0{endpoint}".encode()
    return hashlib.sha256(key).hexdigest()[:10]


def run_file(data_dir, endpoint: str) -> Path:
    return Path(data_dir) / "run" / f"{endpoint}.json"


def host_log(data_dir, endpoint: str) -> Path:
    return Path(data_dir) / "logs" / endpoint / "host.log"


def admin_socket_path(data_dir, endpoint: str) -> Path:
    """DATA_DIR/run/ENDPOINT.sock when it fits the AF_UNIX limit, else in the short run folder."""
    preferred = Path(os.path.abspath(data_dir)) / "run" / f"{endpoint}.sock"
    if len(os.fsencode(preferred)) <= SOCKET_PATH_MAX:
        return preferred
    return run_folder() / f"{endpoint_tag(data_dir, endpoint)}-admin.sock"


def read_run_record(data_dir, endpoint: str) -> dict | None:
    """The run record (None when missing, unreadable, not a regular file: never read through a link, or
    written for another data folder: see `is_record_of`)."""
    from mlctl.errors import MlctlError
    from mlctl.privatefiles import read_json, read_private

    try:
        record = read_json(read_private(run_file(data_dir, endpoint), "run records"))
    except (OSError, ValueError, MlctlError):
        return None
    return record if isinstance(record, dict) and is_record_of(record, data_dir, endpoint) else None


def is_record_of(record: dict, data_dir, endpoint: str) -> bool:
    """Was this run record written by a host of `endpoint` serving the data folder `data_dir`? A record
    copied with its project names the original's folder (a record older than the field, its admin socket)."""
    if "data_dir" in record:
        return record["data_dir"] == os.path.realpath(data_dir)
    return record.get("admin_socket") == str(admin_socket_path(data_dir, endpoint))


def write_run_record(data_dir, endpoint: str, record: dict) -> None:
    """Atomic write (temp + rename) so a reader never sees half a record."""
    from mlctl.privatefiles import ensure_folder, write_atomic

    path = run_file(data_dir, endpoint)
    ensure_folder(path.parent, what="run records", base=data_dir)
    write_atomic(path, json.dumps(record).encode(), what="run record")


def is_alive(pid: int | None) -> bool:
    """Is `pid` a running (not zombie) process?"""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True


def is_host_process(pid: int | None) -> bool:
    """Is `pid` alive and an endpoint host (guards against a recycled pid)?"""
    if not is_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"mlctl.runtime.host" in f.read()
    except OSError:
        return True


def hosts_left_behind(data_dir) -> list[str]:
    """Notes on the endpoint hosts the run records copied into `data_dir` name that still run elsewhere (a
    moved project's hosts keep serving from the old location until stopped); they are not touched."""
    from mlctl.privatefiles import read_json, read_private

    notes = []
    run = data_dir / "run"
    for path in sorted(run.glob("*.json")) if run.is_dir() else []:
        try:
            record = read_json(read_private(path, "run records"))
        except Exception:
            continue
        if isinstance(record, dict) and not is_record_of(record, data_dir, path.stem):
            if is_host_process(record.get("pid")) and not os.path.exists(record.get("data_dir") or "/nonexistent"):
                notes.append(
                    f"Note: the endpoint host of {path.stem!r} started in {record.get('data_dir')} still runs "
                    f"(pid {record['pid']}, port {record.get('port')}); mlctl leaves it alone: `kill {record['pid']}` "
                    "stops it."
                )
    return notes
