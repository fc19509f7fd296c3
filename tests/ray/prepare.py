"""Build, outside the ray tests' network namespace, every virtualenv they use (the namespace has no route
to the package registries): the images of the diabetes example, into MLCTL_CACHE, as the local
runtime's image driver builds them at apply, and an environment on a Python the Ray nodes lack
(`OTHER_PYTHON_DIGEST`: 3.9, else 3.10; shipped to the nodes with its interpreter, tests/ray/test_packages.py).
MLCTL_CACHE defaults to the tests' own cache (tests/conftest.py `mlctl_cache`). `./dev test` runs this before
the ray tests.

    python tests/ray/prepare.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"
# the image digest (cache key) of the environment on another Python: a fixed name, not a spec's hash
OTHER_PYTHON_DIGEST = "sha256:" + "0e7e4" * 12 + "ab3c"
OTHER_PYTHONS = ("3.9", "3.10")


def test_cache() -> Path:
    """The cache the tests use: MLCTL_CACHE, else the one tests/conftest.py's `mlctl_cache` defaults to."""
    return Path(os.environ.get("MLCTL_CACHE") or Path.home() / ".cache" / "mlctl-tests")


def build_other_python() -> str:
    """Build (or find built) the environment on Python 3.9 (else 3.10) with joblib and the server's packages; its
    Python version. Without such a Python: an error in CI, a note elsewhere."""
    from mlctl.errors import MlctlError
    from mlctl.requirements import requirements
    from mlctl.runtime.kit import virtualenvs
    from mlctl.runtime.kit.pythons import find_python

    for version in OTHER_PYTHONS:
        try:
            find_python(version)
        except MlctlError:
            continue
        built = virtualenvs.build_env(OTHER_PYTHON_DIGEST, version, requirements([], ["joblib"]), progress=print)
        return built.python_version
    missing = f"no Python {' or '.join(OTHER_PYTHONS)} on this machine: the ray tests' shipped interpreter needs one"
    if os.environ.get("CI"):
        raise SystemExit(missing)
    return f"none ({missing}; its test is skipped outside CI)"


def build_images(project_dir: Path) -> list[str]:
    """Build every image of the project at `project_dir` (cached builds are reused); their addresses."""
    from mlctl.projectpaths import Project
    from mlctl.reconciler.operations import load_valid_config
    from mlctl.resources import Kind
    from mlctl.runtime.contract import RuntimeContext
    from mlctl.runtime.kit.virtualenvimages import ImageDriver

    project = Project.at(project_dir, runtime_override="local")
    config = load_valid_config(project)
    built = []
    for resource in config.resources:
        if resource.kind is Kind.IMAGE:
            ImageDriver().create(resource, None, RuntimeContext(project, progress=lambda a, m: print(f"{a}: {m}")))
            built.append(str(resource.address))
    return built


def main() -> int:
    os.environ["MLCTL_CACHE"] = str(test_cache())
    with tempfile.TemporaryDirectory(prefix="mlctl-ray-prepare-") as tmp:
        copy = Path(tmp) / "diabetes"
        shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".mlctl", "__pycache__"))
        (copy / "model").mkdir(exist_ok=True)
        (copy / "model" / "model.pkl").write_bytes(b"the image does not depend on the model")
        built = build_images(copy)
    print(f"ray tests: {len(built)} image(s) ready: {', '.join(built)}; on another Python: {build_other_python()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
