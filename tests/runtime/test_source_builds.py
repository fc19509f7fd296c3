"""Source packages never build on the host (issue 24), with real uv builds of a tiny sdist the test makes: by
default an environment installs wheels only and a package without one is refused by name with the setting
that allows it; with `source_builds: true` the local runtime builds it under bubblewrap, where its setup.py
finds no network, no HOME and no writable host folder; without bwrap a source build is refused."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from mlctl.requirements import requirements
from mlctl.runtime.kit import sourcebuilds, sourcefetch
from mlctl.runtime.kit import virtualenvs as envs

OWN = f"{sys.version_info[0]}.{sys.version_info[1]}"

# setup.py records what it could do into the module it builds (tinypkg.SEEN), and tries to leave a mark on the host
SETUP = """\
import os, socket
from setuptools import setup

seen = {"uid": os.getuid()}
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    seen["network"] = "reached"
except OSError as e:
    seen["network"] = type(e).__name__
try:
    with open(MARK, "w") as f:
        f.write("setup.py ran here")
    seen["mark"] = "written"
except OSError as e:
    seen["mark"] = type(e).__name__
try:
    seen["secret"] = open(SECRET).read()
except OSError as e:
    seen["secret"] = type(e).__name__
with open("tinypkg.py", "w") as f:
    f.write("SEEN = " + repr(seen) + "\\n")
setup(name="tinypkg", version="0.1", py_modules=["tinypkg"])
"""


def make_sdist(folder: Path, mark: Path) -> Path:
    """A source-only package `tinypkg` 0.1 (an sdist made here, no wheel anywhere) whose setup.py writes `mark`
    and reads a secret beside it."""
    src = folder / "tinypkg-0.1"
    src.mkdir(parents=True)
    (mark.parent / "secret.txt").write_text("the runner's secret")
    setup = SETUP.replace("MARK", repr(str(mark))).replace("SECRET", repr(str(mark.parent / "secret.txt")))
    (src / "setup.py").write_text(setup)
    (src / "tinypkg.py").write_text("SEEN = {}\n")
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n")
    sdist = folder / "tinypkg-0.1.tar.gz"
    with tarfile.open(sdist, "w:gz") as t:
        t.add(src, arcname="tinypkg-0.1")
    return sdist


def digest() -> str:
    return "sha256:" + uuid.uuid4().hex * 2


def test_a_package_without_a_wheel_is_refused_by_name_and_never_runs(env_cache, tmp_path):
    mark = tmp_path / "host-mark"
    sdist = make_sdist(tmp_path / "pkg", mark)
    with pytest.raises(envs.EnvBuildError) as e:
        envs.build_env(digest(), OWN, requirements([], [f"tinypkg @ file://{sdist}"]))
    assert "tinypkg has no wheel" in e.value.summary and "source_builds: true" in e.value.summary
    assert not mark.exists()  # its setup.py never ran


@pytest.mark.skipif(not shutil.which("bwrap") and not os.environ.get("CI"), reason="bubblewrap is not installed")
def test_an_allowed_source_build_runs_in_a_sandbox_with_no_network(env_cache, tmp_path):
    mark = tmp_path / "host-mark"
    sdist = make_sdist(tmp_path / "pkg", mark)
    built = envs.build_env(digest(), OWN, requirements([], [f"tinypkg @ file://{sdist}"]), source_builds=True)
    seen = subprocess.run(
        [built.python_executable, "-c", "import tinypkg; print(repr(tinypkg.SEEN))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    seen = ast.literal_eval(seen)
    assert seen["network"] != "reached" and seen["network"].endswith("Error")
    assert not mark.exists()  # the host's folder was not writable (a private /tmp stood in its place)
    assert seen["secret"] == "FileNotFoundError"  # nothing of the host but what the build needs
    assert any(line.startswith("tinypkg") for line in built.frozen)


def test_a_source_build_is_refused_where_bubblewrap_is_missing(env_cache, tmp_path, monkeypatch):
    mark = tmp_path / "host-mark"
    sdist = make_sdist(tmp_path / "pkg", mark)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # a machine without bubblewrap (uv and python by full path)
    with pytest.raises(envs.EnvBuildError) as e:
        envs.build_env(digest(), OWN, requirements([], [f"tinypkg @ file://{sdist}"]), source_builds=True)
    assert "bubblewrap" in e.value.summary and not mark.exists()


def test_uvs_refusals_name_the_package():
    assert sourcebuilds.no_wheel("  cause: Building source distributions for `tinypkg` is disabled") == "tinypkg"
    assert sourcebuilds.no_wheel("Because foo==1.0 has no usable wheels and building from source is disabled") == "foo"
    assert sourcebuilds.no_wheel("error: No solution found when resolving dependencies") is None


def test_uvs_refusals_name_the_package_not_its_version():
    text = "Because wrapt>=1.11.1,<=1.12.1 has no usable wheels and inference-schema==1.3.0 depends on wrapt"
    assert sourcebuilds.no_wheel(text) == "wrapt"
    assert sourcefetch.wanted(text) == ("wrapt", ">=1.11.1,<=1.12.1")
    assert sourcebuilds.no_wheel("Because all versions of wrapt have no usable wheels") == "wrapt"


def test_a_refused_index_package_is_named_with_the_setting(env_cache):
    with pytest.raises(envs.EnvBuildError) as e:
        envs.build_env(digest(), OWN, requirements([], [SDIST_ONLY]))
    assert e.value.summary.startswith("termcolor has no wheel") and "local: {source_builds: true}" in e.value.summary


# a small pure-Python package that PyPI has only as an sdist (termcolor 1.1.0, 2015: a tar.gz, no wheel)
SDIST_ONLY = "termcolor==1.1.0"


@pytest.mark.skipif(not shutil.which("bwrap") and not os.environ.get("CI"), reason="bubblewrap is not installed")
def test_a_package_only_on_the_index_as_an_sdist_is_fetched_as_a_file_and_built_in_the_sandbox(env_cache):
    key = digest()
    built = envs.build_env(key, OWN, requirements([], [SDIST_ONLY]), source_builds=True)
    assert any(line.startswith("termcolor") and "termcolor-1.1.0.tar.gz" in line for line in built.frozen)
    out = subprocess.run(
        [built.python_executable, "-c", "import termcolor; print(termcolor.colored('x', 'red') != 'x')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "True"
    log = envs.build_log(key).read_text()
    fetched = log.index("fetching termcolor==1.1.0 as a source distribution")
    sandbox = log.index("--unshare-net")  # the sandbox's command line
    assert fetched < sandbox < log.index("Building termcolor")  # built only in the sandbox, after the fetch
    assert log.count("Building termcolor") == 1


def test_an_sdists_dependencies_are_read_as_data_and_one_named_by_url_is_refused(tmp_path):
    src = tmp_path / "evil-1.0"
    (src / "evil.egg-info").mkdir(parents=True)
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n")
    (src / "evil.egg-info" / "requires.txt").write_text("six>=1\n\n[:python_version < '3.8']\nwrapt<=1.12.1\n")
    sdist = tmp_path / "evil-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as t:
        t.add(src, arcname="evil-1.0")
    assert sourcefetch.sdist_requires(sdist) == ["six>=1", "wrapt<=1.12.1; (python_version < '3.8')"]
    assert sourcefetch.checked_requires("evil-1.0.tar.gz", ["six>=1"]) == ["six>=1"]
    with pytest.raises(sourcefetch.SourceFetchError, match="by URL"):
        sourcefetch.checked_requires("evil-1.0.tar.gz", ["other @ https://example.com/other-1.0.tar.gz"])


def test_the_newest_sdist_in_range_for_the_python_is_picked():
    def file(name, requires=None, yanked=False):
        return {"filename": name, "hashes": {"sha256": "0" * 64}, "requires-python": requires, "yanked": yanked}

    files = [
        file("wrapt-1.12.1.tar.gz"),
        file("wrapt-1.12.0.tar.gz"),
        file("wrapt-1.13.0.tar.gz"),
        file("wrapt-1.12.2.tar.gz", yanked=True),
        file("wrapt-1.12.3.tar.gz", requires=">=3.8"),
        file("wrapt-1.12.1-cp37-cp37m-win_amd64.whl"),
    ]
    assert sourcefetch.pick(files, ">=1.11.1,<=1.12.9", "3.7.16")["filename"] == "wrapt-1.12.1.tar.gz"
    assert sourcefetch.pick(files, ">=1.11.1,<=1.12.9", "3.9.1")["filename"] == "wrapt-1.12.3.tar.gz"
    assert sourcefetch.pick(files, "<1.0", "3.7.16") is None
