"""Host-side build steps of the docker runtime: where they keep logs and locks, a command run with its
output to a build log (and to progress), a lock so two mlctl processes never build the same thing at
once, and the tail of a log for an error.

Logs live in the shared cache (`$MLCTL_CACHE/docker/logs/`); locks in a per-user folder of the machine's
temporary directory, so every cache on one machine (one engine) shares them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from mlctl.masking import mask_url_credentials
from mlctl.runtime.docker import engine
from mlctl.runtime.kit.buildgroup import kill_group, start_step
from mlctl.runtime.kit.virtualenvs import build_lock, cache_dir

Say = Callable[[str], None]


def docker_cache() -> Path:
    """`$MLCTL_CACHE/docker`: build logs, scratch folders and the Python versions of images."""
    path = cache_dir() / "docker"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(key: str) -> Path:
    """The build log named `key` (kept after the build)."""
    path = docker_cache() / "logs" / f"{key}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def machine_lock(name: str, say: Say | None = None) -> Iterator[None]:
    """Hold the machine-wide lock `name` (flock: freed by the kernel when its holder dies); `say` is
    told when another process holds it and this one waits."""
    folder = Path(tempfile.gettempdir()) / f"mlctl-docker-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    with build_lock(folder / f"{name}.lock", "waiting for another mlctl building the same image to finish", say):
        yield


def run(cmd: list[str], log, say: Say | None = None, what: str = "", env: dict | None = None) -> None:
    """Run `cmd` (its process group killed if mlctl is interrupted or dies), its output to `log` and each
    line to `say` as "what: line". CalledProcessError when it fails."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = start_step(cmd, {**os.environ, **(env or {})})
    try:
        for line in proc.stdout:
            log.write(mask_url_credentials(line))
            if say and line.strip() and not line.lstrip().startswith(("+ ", "- ")):  # one line per package: log only
                say(f"{what}: {mask_url_credentials(line.strip())}" if what else mask_url_credentials(line.strip()))
        log.flush()
        code = proc.wait()
    except BaseException:
        kill_group(proc)
        raise
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log ('' when it cannot be read)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class EngineBuildFailed(Exception):
    """An engine build failed: the engine's message (its output is in the log)."""


def engine_build(client, log, say: Say | None = None, **kwargs) -> str:
    """Run an engine build (the SDK's low-level `build(**kwargs)`), its output streamed to `log` and
    to `say`; the built image's id. EngineBuildFailed with the engine's message when it fails;
    DriverError saying so when the engine stops answering."""
    image_id = None
    try:
        for chunk in client.api.build(decode=True, rm=True, forcerm=True, **kwargs):
            if "stream" in chunk:
                text = chunk["stream"]
                log.write(text)
                if say and text.startswith("Step "):  # one progress line per Dockerfile step
                    say(text.strip() if len(text) < 100 else text.strip()[:97] + "...")
            elif "error" in chunk:
                log.write(chunk["error"].rstrip() + "\n")
                raise EngineBuildFailed(chunk["error"].strip())
            elif "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except EngineBuildFailed:
        raise
    except Exception as e:  # the SDK's APIError / BuildError, a connection error: said, then raised
        log.write(f"{e}\n")
        if engine.is_connection_error(e):
            raise engine.failure("building an image", e) from None
        raise EngineBuildFailed(getattr(e, "explanation", None) or str(e)) from e
    finally:
        log.flush()
    if image_id is None:
        raise EngineBuildFailed("the engine reported no image")
    return image_id
