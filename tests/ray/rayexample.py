"""The example project on a Ray cluster, as the ray tests use it: examples/diabetes copied, its model trained here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from e2e_support import EXAMPLE


def ray_project_file(root: Path, address: str) -> None:
    (root / "mlctl.yaml").write_text(f'runtime: ray\nray:\n  address: "{address}"\n  replica_cpus: 0.5\n')


def example_project(root: Path, address: str, instances: int = 1) -> Path:
    """The diabetes example at `root` on the cluster at `address` with `instances` instances of blue."""
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlctl", "__pycache__", "model.pkl"))
    (root / "model").mkdir(exist_ok=True)
    subprocess.run([sys.executable, str(EXAMPLE / "train.py"), str(root / "model")], check=True, capture_output=True)
    ray_project_file(root, address)
    blue = root / "blue-deployment.yml"
    blue.write_text(blue.read_text().replace("instance_count: 1", f"instance_count: {instances}"))
    return root
