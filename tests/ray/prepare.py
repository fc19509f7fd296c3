"""Build, outside the ray tests' network namespace, every virtualenv they use (the namespace has no route
to the package registries): the images of the diabetes example, into MLCTL_CACHE, as the local
runtime's image driver builds them at apply. `./dev test` runs this before the ray tests.

    python tests/ray/prepare.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"


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
    with tempfile.TemporaryDirectory(prefix="mlctl-ray-prepare-") as tmp:
        copy = Path(tmp) / "diabetes"
        shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".mlctl", "__pycache__"))
        (copy / "model").mkdir(exist_ok=True)
        (copy / "model" / "model.pkl").write_bytes(b"the image does not depend on the model")
        built = build_images(copy)
    print(f"ray tests: {len(built)} image(s) ready: {', '.join(built)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
