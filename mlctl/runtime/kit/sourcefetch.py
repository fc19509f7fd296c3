"""Source fetches: the source distributions a sandboxed build needs from an index, downloaded on the host
without running any of their code (sourcebuilds.py builds them offline).

uv resolves the environment for wheels only (`--only-binary :all:`); each package it finds without a wheel
is fetched as an sdist from the index's simple API (PEP 691 JSON: the file's URL and sha256), checked
against its hash, and its dependencies are read from the archive's metadata (`PKG-INFO`, or the
`*.egg-info/requires.txt` older setuptools wrote) as data; then uv resolves again, allowed that package's
sdist (`--no-binary NAME`), pinned to the fetched version (a constraint) and told its dependencies
(`dependency-metadata` in a uv.toml), so it never builds it for metadata. What comes out: the pins of the
whole set and one `NAME @ file://SDIST` line per fetched package, for the offline install in the sandbox.
Effects: `fetch_sources` (uv, the index, the folder); the rest is pure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_sdist_filename
from packaging.version import InvalidVersion, Version

from mlctl.runtime.kit import sourcebuilds

PYPI_SIMPLE = "https://pypi.org/simple"
MAX_ROUNDS = 20  # source packages fetched for one environment, at most
MAX_SDIST = 200 * 1024 * 1024  # bytes of one source distribution
MAX_METADATA = 1024 * 1024  # bytes of the metadata read from it
TIMEOUT = 60
NO_WHEEL_SPEC = re.compile(rf"`?{sourcebuilds.NAME}(?:\[[^\]]*\])?({sourcebuilds.SPEC})?`? has no usable wheels")


class SourceFetchError(OSError):
    """A source package could not be fetched (not on the index, no sdist, a bad hash, too many)."""


@dataclass(frozen=True)
class Sdist:
    """A fetched source distribution: its project, version, file and dependencies (from its metadata)."""

    name: str
    version: str
    path: Path
    requires: tuple[str, ...]


def wanted(log_text: str) -> tuple[str, str] | None:
    """Pure: the package (and the versions) uv found no wheel for, from its output, or None."""
    m = NO_WHEEL_SPEC.search(log_text)
    if m:
        return m.group(1), (m.group(2) or "").rstrip(",")
    name = sourcebuilds.no_wheel(log_text)
    return (name, "") if name else None


def index_url(lines) -> str:
    """Pure: the index the requirements name (`--index-url`), else PyPI's simple API."""
    for line in lines:
        parts = line.replace("=", " ", 1).split() if line.startswith("--index-url") else []
        if len(parts) == 2:
            return parts[1].rstrip("/")
    return PYPI_SIMPLE


def pick(files: list[dict], spec: str, python: str) -> dict | None:
    """Pure: the newest sdist among a simple-API project's `files` whose version is in `spec` and whose
    Requires-Python admits `python` (not yanked, with a sha256)."""
    try:
        allowed = SpecifierSet(spec)
    except InvalidSpecifier:
        allowed = SpecifierSet()
    best: tuple[Version, dict] | None = None
    for f in files:
        name = f.get("filename", "")
        if f.get("yanked") or "sha256" not in (f.get("hashes") or {}):
            continue
        try:
            version = parse_sdist_filename(name)[1]
            requires = SpecifierSet(f.get("requires-python") or "")
        except (ValueError, InvalidSpecifier, InvalidVersion):
            continue
        if version in allowed and (not requires or Version(python) in requires):
            if best is None or version > best[0]:
                best = (version, f)
    return best[1] if best else None


def requires_txt(text: str) -> list[str]:
    """Pure: the dependencies an egg-info `requires.txt` lists, as Requires-Dist lines (sections give the
    extra and the marker)."""
    out, marker = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            extra, _, cond = line[1:-1].partition(":")
            parts = [f"({cond})"] if cond else []
            parts += [f'extra == "{extra}"'] if extra else []
            marker = " and ".join(parts)
            continue
        out.append(f"{line}; {marker}" if marker else line)
    return out


def sdist_requires(path: Path) -> list[str]:
    """The dependencies a source distribution declares, read from its metadata files as data (nothing of it
    runs): PKG-INFO's Requires-Dist, else the egg-info's requires.txt, else none."""
    members = _metadata_members(path)
    pkg_info = next((text for name, text in members if name.count("/") == 1 and name.endswith("/PKG-INFO")), "")
    declared = Parser().parsestr(pkg_info).get_all("Requires-Dist") or []
    if declared:
        return list(declared)
    egg = next((text for name, text in members if name.endswith(".egg-info/requires.txt")), "")
    return requires_txt(egg)


def _metadata_members(path: Path) -> list[tuple[str, str]]:
    def wanted_member(name: str) -> bool:
        return name.endswith(("/PKG-INFO", ".egg-info/requires.txt")) and name.count("/") <= 2

    found = []
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if wanted_member(info.filename) and info.file_size <= MAX_METADATA:
                    found.append((info.filename, z.read(info).decode("utf-8", "replace")))
        return found
    with tarfile.open(path) as t:
        for member in t:
            if member.isfile() and wanted_member(member.name) and member.size <= MAX_METADATA:
                data = t.extractfile(member)
                found.append((member.name, data.read().decode("utf-8", "replace") if data else ""))
    return found


def uv_config(sdists: list[Sdist]) -> str:
    """Pure: a uv.toml telling uv each fetched package's dependencies (so it never builds one for them)."""
    out = []
    for s in sdists:
        out += ["[[dependency-metadata]]", f"name = {json.dumps(s.name)}", f"version = {json.dumps(s.version)}"]
        out += [f"requires-dist = {json.dumps(list(s.requires))}", ""]
    return "\n".join(out)


def download(index: str, name: str, spec: str, python: str, folder: Path) -> Sdist:
    """Fetch the newest sdist of `name` in `spec` for `python` from the index into `folder`, checking its
    sha256 (SourceFetchError when there is none or it does not match)."""
    project = canonicalize_name(name)
    request = urllib.request.Request(
        f"{index}/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json", "User-Agent": "mlctl"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            page = json.loads(response.read(50 * 1024 * 1024))
    except (OSError, ValueError) as e:
        raise SourceFetchError(f"{name}: the index {index} did not list it ({e})") from None
    chosen = pick(page.get("files") or [], spec, python)
    if chosen is None:
        raise SourceFetchError(f"{name}{spec}: the index {index} has no source distribution for Python {python}")
    filename = Path(chosen["filename"]).name
    target = folder / filename
    url = urllib.parse.urljoin(f"{index}/{project}/", chosen["url"])
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(target, "wb") as out:
        size = 0
        while chunk := response.read(1024 * 1024):
            size += len(chunk)
            if size > MAX_SDIST:
                raise SourceFetchError(f"{filename} is larger than {MAX_SDIST // 2**20} MiB")
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != chosen["hashes"]["sha256"]:
        target.unlink()
        raise SourceFetchError(f"{filename}: its sha256 does not match the index's")
    version = str(parse_sdist_filename(filename)[1])
    return Sdist(project, version, target, tuple(checked_requires(filename, sdist_requires(target))))


def checked_requires(filename: str, declared: list[str]) -> list[str]:
    """Pure: an sdist's declared dependencies, SourceFetchError when one is not a requirement or names a URL
    (uv would fetch and build that on the host to learn its metadata)."""
    for line in declared:
        try:
            url = Requirement(line).url
        except InvalidRequirement:
            raise SourceFetchError(
                f"{filename}: its metadata declares a dependency that is not one: {line!r}"
            ) from None
        if url:
            raise SourceFetchError(f"{filename}: its metadata names a dependency by URL ({line!r}): refused")
    return declared


def fetch_sources(uv: list[str], target: list[str], version: str, lines: list[str], folder: Path, log) -> list[str]:
    """Resolve `lines` for the Python uv's `target` options name (`--python EXE`, or `--python-version` and
    `--python-platform`; version `version`) with wheels only, fetching each package that has none as an sdist
    into `folder`; returns the pins of the whole set and a `NAME @ file://` line per fetched package
    (SourceFetchError, or CalledProcessError with uv's output in `log`)."""
    folder.mkdir(parents=True, exist_ok=True)
    reqs, constraints, config = folder / "requirements.in", folder / "constraints.txt", folder / "uv.toml"
    reqs.write_text("".join(f"{line}\n" for line in lines))
    sdists: list[Sdist] = []
    for _ in range(MAX_ROUNDS):
        config.write_text(uv_config(sdists))
        constraints.write_text("".join(f"{s.name}=={s.version}\n" for s in sdists))
        cmd = [*uv, "pip", "compile", "--quiet", *target, "--only-binary", ":all:", "--no-header"]
        cmd += ["--no-annotate", "--config-file", str(config), "-c", str(constraints), str(reqs)]
        for s in sdists:
            cmd += ["--no-binary", s.name]
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
        log.write(done.stderr)
        if done.returncode == 0:
            fetched = {s.name for s in sdists}
            pins = [p for p in done.stdout.splitlines() if p.strip() and not p.startswith("#")]
            pins = [p for p in pins if canonicalize_name(re.split(r"[=<>!~ ;\[]", p, 1)[0]) not in fetched]
            return pins + [f"{s.name} @ {s.path.resolve().as_uri()}" for s in sdists]

        need = wanted(done.stderr)
        if need is None or canonicalize_name(need[0]) in {s.name for s in sdists}:
            raise subprocess.CalledProcessError(done.returncode, cmd)
        log.write(f"fetching {need[0]}{need[1]} as a source distribution (no code of it runs here)\n")
        sdists.append(download(index_url(lines), need[0], need[1], version, folder))
    raise SourceFetchError(f"more than {MAX_ROUNDS} packages need source builds")


def write_lists(pinned: list[str], options: list[str], folder: Path) -> tuple[Path, Path, Path]:
    """Write what `fetch_sources` returned as three requirement files in `folder`: what the host installs
    (`options` and the pins of what has wheels, for `--no-deps`), the constraints of the sandbox's install
    (the pins) and the fetched source packages (`NAME @ file://`)."""
    wheels = [p for p in pinned if " @ file://" not in p]
    files = folder / "wheels.txt", folder / "pins.txt", folder / "fetched.txt"
    for path, rows in zip(files, ([*options, *wheels], wheels, [p for p in pinned if " @ file://" in p])):
        path.write_text("".join(f"{row}\n" for row in rows))
        path.chmod(0o600)
    return files
