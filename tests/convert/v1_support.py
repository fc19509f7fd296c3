"""Helpers for the `mlctl convert v1` tests (here and in tests/e2e): the v1 files of the diabetes
example, and a v1-era copy of the example to convert."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"
V1 = Path(__file__).parent / "v1"


def make_v1_project(root: Path, model: bytes | Path = b"not a real model") -> Path:
    """`root` as a v1 repository of the diabetes example: onlinescoring/, environment/, model/model.pkl
    (the bytes given, or a copy of a trained model), v1/*.json (tests/convert/v1/diabetes); no endpoint YAML."""

    def current_form(folder, names):  # the example's own endpoint YAML, and what runs leave behind
        top = Path(folder) == EXAMPLE
        return [
            n
            for n in names
            if n in (".mlctl", "__pycache__") or top and (n.endswith(".yml") or n in ("legacy", "model"))
        ]

    shutil.copytree(EXAMPLE, root, ignore=current_form)
    (root / "model").mkdir()
    if isinstance(model, Path):
        shutil.copy(model, root / "model" / "model.pkl")
    else:
        (root / "model" / "model.pkl").write_bytes(model)
    shutil.copytree(V1 / "diabetes", root / "v1")
    return root
