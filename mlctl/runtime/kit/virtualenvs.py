"""Images of the local runtime: virtualenvs built with uv, cached by image digest in `$MLCTL_CACHE/envs/`.

A virtualenv is built at its final path (venv scripts embed it) under a per-digest flock, and
marked complete (`.complete`, holding the build's facts as JSON) only at the very end: a second
build of the same digest waits and reuses it; a build killed half-way leaves no marker and is
rebuilt. The build log stays at `envs/<key>.log` and is quoted on failure. Without uv (the `uv`
package from PyPI or a `uv` binary) it falls back to `python -m venv` and pip.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from mlctl.masking import mask_url_credentials
from mlctl.privatefiles import write_atomic
from mlctl.requirements import Requirements, requirement_name
from mlctl.runtime.kit import sourcebuilds, sourcefetch
from mlctl.runtime.kit.buildgroup import kill_group, start_step
from mlctl.runtime.kit.pythons import find_python

# the scoring server's own packages: aiohttp 3.9+ from Python 3.8, the aiohttp 3.8 line on Python 3.7 (its
# floor: mlctl.pythonversions)
SERVER_PACKAGES = ("aiohttp>=3.9; python_version >= '3.8'", "aiohttp>=3.8.6,<3.9; python_version < '3.8'")
FAST_PACKAGES = ("uvloop; sys_platform != 'win32' and platform_python_implementation == 'CPython'", "orjson")
COMPLETE = ".complete"
WHEELS_ONLY = ("--only-binary", ":all:")  # no package's own code runs on the host (sourcebuilds.py)

Progress = Callable[[str], None]


class SourceBuildRefused(OSError):
    """A source build is allowed but cannot be sandboxed here."""


class EnvBuildError(Exception):
    """A virtualenv build failed: `summary`, the build log's path and its last lines."""

    def __init__(self, summary: str, log_path: Path, log_tail: str):
        super().__init__(summary)
        self.summary, self.log_path, self.log_tail = summary, log_path, log_tail


@dataclass(frozen=True)
class BuiltEnv:
    """What an image resolved to on this machine (recorded in state as observed)."""

    path: str
    python_executable: str
    python_version: str
    platform: str
    frozen: list[str]
    built_with: str
    notes: list[str]
    built_at: float

    def observed(self) -> dict:
        return asdict(self)


def cache_dir() -> Path:
    """The shared cache: `$MLCTL_CACHE`, else `$XDG_CACHE_HOME/mlctl`, else `~/.cache/mlctl`."""
    if os.environ.get("MLCTL_CACHE"):
        return Path(os.environ["MLCTL_CACHE"]).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "mlctl"


def env_key(digest: str) -> str:
    """Pure: the cache folder name of an image digest ("sha256:ab12..." -> "ab12...", 24 hex chars)."""
    return digest.split(":", 1)[-1][:24]


def env_path(digest: str) -> Path:
    return cache_dir() / "envs" / env_key(digest)


def build_log(digest: str) -> Path:
    """The build log of image `digest` (kept after the build, quoted when it fails)."""
    return cache_dir() / "envs" / f"{env_key(digest)}.log"


def mark_used(digest: str) -> None:
    """Note that a project uses this virtualenv now (`mlctl cache prune` keeps recently used ones)."""
    marker = env_path(digest) / ".last-used"
    if marker.parent.is_dir():
        marker.touch()


def env_python(path) -> Path:
    return Path(path) / "bin" / "python"


def read_built(digest: str) -> BuiltEnv | None:
    """The finished virtualenv of `digest`, or None when it is missing or half-built."""
    marker = env_path(digest) / COMPLETE
    try:
        built = BuiltEnv(**json.loads(marker.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return built if Path(built.python_executable).exists() else None


def uv_command() -> list[str] | None:
    """How to run uv: the binary of the `uv` PyPI package, else `uv` on PATH, else None."""
    try:
        import uv

        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        return [found] if found else None


def _run(cmd: list[str], log, progress: Progress | None, what: str) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "VIRTUAL_ENV": ""}
    env.pop("VIRTUAL_ENV")
    proc = start_step(cmd, env)
    assert proc.stdout is not None  # start_step pipes it
    try:
        for line in proc.stdout:
            log.write(mask_url_credentials(line))
            if progress and line.strip() and not line.lstrip().startswith(("+ ", "- ")):
                progress(f"{what}: {mask_url_credentials(line.strip())}")
        log.flush()
        code = proc.wait()
    except BaseException:  # Ctrl-C or an error: the build's whole process group goes with mlctl
        kill_group(proc)
        raise
    if code != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)


def _refused_source(log_path: Path) -> str | None | bool:
    """The package uv refused to build from source, by the build log (None: one it did not name), False when
    the build failed for another reason."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return False
    name = sourcebuilds.no_wheel(text)
    lowered = text.lower()
    if name is None and not any(w in lowered for w in ("source distribution", "no usable wheels")):
        return False
    return name


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _install_with_source_builds(path: Path, interp, req_file: Path, reqs, uv, install, log, progress) -> None:
    """What has wheels installed on the host (network, no build; uv's cache gets the build backends), the
    source distributions of what has none fetched as files (sourcefetch.py), then the whole install again
    offline in the sandbox, where source packages build (sourcebuilds.py)."""
    python = interp.executable
    bwrap = sourcebuilds.bwrap_path()
    if bwrap is None or not uv:
        why = "bubblewrap (bwrap) is not installed" if bwrap is None else "uv is not installed"
        log.write(f"source builds are allowed, but {why}: refused\n")
        raise SourceBuildRefused(
            f"source_builds is set, but {why}: a source build runs only in its sandbox "
            "(install Debian's bubblewrap, or use packages that have wheels)"
        )
    sources = path.parent / f"{path.name}.sources"
    shutil.rmtree(sources, ignore_errors=True)
    say = progress or (lambda msg: None)
    say("resolving with wheels only; fetching the source distributions of what has none (nothing of them runs)")
    hosted = sourcebuilds.wheel_lines(reqs.lines)
    pinned = sourcefetch.fetch_sources(uv, ["--python", python], interp.version_text, hosted, sources, log)
    options = [line for line in hosted if line.startswith("-")]
    wheels, pins, fetched = sourcefetch.write_lists(pinned, options, sources)
    _run([*install, *WHEELS_ONLY, "--no-deps", "-r", str(wheels)], log, progress, "install")
    backends = path.parent / f"{path.name}.backends"
    shutil.rmtree(backends, ignore_errors=True)
    try:
        _run(
            # for the environment's Python: the offline build resolves its backend for that version (setuptools
            # 84 is not for Python 3.7: a fresh machine's cache held no setuptools a 3.7 build could use)
            [*uv, "pip", "install", *WHEELS_ONLY, "--python", python, "--target", str(backends)]
            + list(sourcebuilds.BUILD_BACKENDS),
            log,
            None,
            "",
        )
    finally:
        shutil.rmtree(backends, ignore_errors=True)
    cache = subprocess.run([*uv, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    Path(cache).mkdir(parents=True, exist_ok=True)
    readable = [*sourcebuilds.interpreter_folders(python), *sourcebuilds.uv_folders(uv), str(req_file), str(sources)]
    cmd = sourcebuilds.sandboxed(
        bwrap,
        [*install, "--offline", "-r", str(req_file), "-r", str(fetched), "-c", str(pins)],
        [str(path), cache],
        readable + sourcebuilds.file_sources(reqs.lines),
        env={"UV_CACHE_DIR": cache},
    )
    try:
        _run(cmd, log, progress, "source build")
    finally:
        shutil.rmtree(sources, ignore_errors=True)


def _build(
    path: Path,
    python_request: str | None,
    reqs: Requirements,
    uv: list[str] | None,
    log,
    progress: Progress | None,
    source_builds: bool = False,
) -> BuiltEnv:
    interp = find_python(python_request)
    say = progress or (lambda msg: None)
    py = str(env_python(path))
    for note in reqs.notes:
        log.write(f"note: {note}\n")
        say(note)
    req_file = path.parent / f"{path.name}.requirements.txt"
    write_atomic(req_file, "".join(f"{r}\n" for r in reqs.lines).encode(), mode=0o600)  # private: it names indexes
    say(f"creating a virtualenv with Python {interp.version_text} ({'uv' if uv else 'venv + pip'})")
    if uv:
        _run([*uv, "venv", "--no-project", "--python", interp.executable, str(path)], log, None, "venv")
        install = [*uv, "pip", "install", "--compile-bytecode", "--python", py]
    else:
        _run([interp.executable, "-m", "venv", str(path)], log, None, "venv")
        install = [py, "-m", "pip", "install", "--progress-bar", "off"]
    say(f"installing {len(reqs.lines)} packages")
    if source_builds:
        _install_with_source_builds(path, interp, req_file, reqs, uv, install, log, progress)
    else:
        _run([*install, *WHEELS_ONLY, "-r", str(req_file)], log, progress, "install")
    try:  # speed-ups where the platform has wheels for them; the server runs without them
        _run([*install, *WHEELS_ONLY, *FAST_PACKAGES], log, None, "install")
    except subprocess.CalledProcessError:
        log.write("note: uvloop/orjson unavailable for this platform; the scoring server runs without them\n")
    freeze = [*uv, "pip", "freeze", "--python", py] if uv else [py, "-m", "pip", "freeze"]
    frozen = [
        x.strip()
        for x in subprocess.run(freeze, capture_output=True, text=True, check=True).stdout.splitlines()
        if x.strip()
    ]
    probe = "import platform; print(platform.python_version()); print(platform.platform())"
    facts = subprocess.run([py, "-c", probe], capture_output=True, text=True, check=True)
    version, plat = facts.stdout.splitlines()[:2]
    return BuiltEnv(
        str(path), py, version, plat, sorted(frozen), "uv" if uv else "venv+pip", list(reqs.notes), time.time()
    )


@contextlib.contextmanager
def build_lock(path: Path, waiting: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the file lock at `path` (flock: freed by the kernel when its holder dies); `say` is told
    `waiting` when another process holds it and this one waits (virtualenv and image builds)."""
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say:
                say(waiting)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_env(
    digest: str,
    python_request: str | None,
    reqs: Requirements,
    *,
    progress: Progress | None = None,
    use_uv: bool | None = None,
    source_builds: bool = False,
) -> BuiltEnv:
    """Build (or reuse) the virtualenv of image `digest` with `reqs` plus the scoring server's
    packages. Safe against concurrent builds of one digest and against builds killed half-way.
    Raises EnvBuildError (with the log tail) or MlctlError (no interpreter for the version)."""
    path = env_path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_command() if use_uv is not False else None
    if use_uv and uv is None:
        raise EnvBuildError("uv is not installed", path, "")
    present = {requirement_name(r) for r in reqs.lines}
    full = Requirements(
        reqs.lines + tuple(p for p in SERVER_PACKAGES if requirement_name(p) not in present), reqs.notes
    )
    with build_lock(path.parent / f"{path.name}.lock", "waiting for another build of this image to finish", progress):
        done = read_built(digest)
        if done:
            return done
        if path.exists():
            if progress:
                progress("removing a half-built virtualenv left by an interrupted build")
            remove_env(path)
        log_path = build_log(digest)
        with open(log_path, "w") as log:
            try:
                built = _build(path, python_request, full, uv, log, progress, source_builds)
            except (subprocess.CalledProcessError, OSError) as e:
                log.write(f"build failed: {e}\n")
                log.flush()
                summary = f"building the virtualenv failed ({e})"
                refused = False if source_builds else _refused_source(log_path)
                if isinstance(e, SourceBuildRefused):
                    summary = str(e)
                elif refused is not False:
                    summary = sourcebuilds.refusal(refused if isinstance(refused, str) else None, "local")
                raise EnvBuildError(summary, log_path, _tail(log_path)) from None
        (path / "freeze.txt").write_text("".join(f"{x}\n" for x in built.frozen))
        tmp = path / (COMPLETE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(built), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path / COMPLETE)
        return built


def remove_env(path) -> None:
    """Delete a virtualenv folder (the caller holds its lock or knows no build runs)."""
    shutil.rmtree(path, ignore_errors=True)
    if Path(path).exists():
        shutil.rmtree(path)
