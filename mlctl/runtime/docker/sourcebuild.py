"""A source build of an environment's packages for the docker runtime, in a container with no network.

Used only when the project sets `docker: {source_builds: true}` (otherwise packages install from wheels
only: mlctl.runtime.kit.sourcebuilds). What has wheels is installed on the host first (network, no build,
uv's cache also gets the build backends; what an index has only as an sdist is fetched as a file:
kit/sourcefetch.py); then the whole install runs again, offline, in a container of the image's base: no
network, every capability dropped, no-new-privileges, a read-only root with a private /tmp, the host's
user; it sees uv (read-only), uv's cache and the image's site folder (writable), the requirements and the
sources they name by `file://` (read-only), and builds for the base's own Python.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mlctl.runtime.kit import sourcebuilds, sourcefetch
from mlctl.runtime.kit.virtualenvs import WHEELS_ONLY

UV_TARGET = "/opt/mlctl-uv"
CACHE_TARGET = "/opt/mlctl-uv-cache"
BUILD_TARGET = "/opt/mlctl-build"


def install_from_source(client, base, uv: list[str], install: list[str], scratch: Path, log, say, env: dict) -> None:
    """Install `scratch/requirements.txt` into `scratch/site`, building source packages in a container of
    `base` with no network; CalledProcessError when the build fails (its output is in `log`)."""
    from mlctl.runtime.docker import steps

    lines = (scratch / "requirements.txt").read_text().splitlines()
    hosted = sourcebuilds.wheel_lines(lines)
    say("resolving with wheels only; fetching the source distributions of what has none (nothing of them runs)")
    platform = install[install.index("--python-platform") + 1]  # the image's, as the host install names it
    target = ["--python-version", base.python_version, "--python-platform", platform]
    pinned = sourcefetch.fetch_sources(uv, target, base.python_version, hosted, scratch / "sources", log)
    options = [line for line in hosted if line.startswith("-")]
    wheels, pins, fetched = sourcefetch.write_lists(pinned, options, scratch / "sources")
    steps.run([*install, "--no-deps", "-r", str(wheels)], log, say, "install", env)
    backends = [*uv, "pip", "install", *WHEELS_ONLY, *target, "--target", str(scratch / "backends")]  # its Python's
    steps.run([*backends, *sourcebuilds.BUILD_BACKENDS], log, None, "", env)
    cache = subprocess.run([*uv, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    Path(cache).mkdir(parents=True, exist_ok=True)
    uv_dir = os.path.dirname(os.path.realpath(uv[0]))
    volumes = {
        uv_dir: {"bind": UV_TARGET, "mode": "ro"},
        cache: {"bind": CACHE_TARGET, "mode": "rw"},
        str(scratch): {"bind": BUILD_TARGET, "mode": "rw"},
        **{path: {"bind": path, "mode": "ro"} for path in sourcebuilds.file_sources(lines + pinned)},
    }
    cmd = [f"{UV_TARGET}/{os.path.basename(uv[0])}", "pip", "install", "--offline", "--target", f"{BUILD_TARGET}/site"]
    cmd += ["--python", base.python, "-r", f"{BUILD_TARGET}/requirements.txt"]
    cmd += ["-r", f"{BUILD_TARGET}/sources/{fetched.name}", "-c", f"{BUILD_TARGET}/sources/{pins.name}"]
    say("building source packages in a container with no network")
    log.write(f"$ (in a container of {base.ref}, no network) {' '.join(cmd)}\n")
    log.flush()
    box = client.containers.run(
        base.ref,
        cmd,
        detach=True,
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        read_only=True,
        tmpfs={"/tmp": "rw,mode=1777"},
        user=f"{os.getuid()}:{os.getgid()}",
        environment={"UV_CACHE_DIR": CACHE_TARGET, "HOME": "/tmp", "UV_PYTHON_DOWNLOADS": "never"},
        volumes=volumes,
        labels={"mlctl.managed": "1", "mlctl.kind": "source-build"},
    )
    try:
        code = box.wait()["StatusCode"]
        log.write(box.logs(stdout=True, stderr=True).decode("utf-8", "replace"))
        log.flush()
    finally:
        box.remove(force=True)
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)
