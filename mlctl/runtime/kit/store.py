"""The model store: registered models in the project's data folder, laid out as Azure ML does.

`DATA/models/azureml-models/NAME/VERSION/` is a model's `AZUREML_MODEL_DIR`: a registered file
lands directly inside it, a registered folder keeps its own name under it. A version is written
once (copied beside, then renamed into place) and made read-only; its content digest is kept in
`NAME/VERSION.mlctl.json`, so registering other content under an existing NAME:VERSION is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

from mlctl.digests import list_files
from mlctl.errors import Diagnostic, MlctlError
from mlctl.privatefiles import ensure_folder, read_json, write_atomic


def models_root(data_dir) -> Path:
    return Path(data_dir) / "models" / "azureml-models"


def model_dir(data_dir, name: str, version: str) -> Path:
    """The AZUREML_MODEL_DIR of NAME:VERSION."""
    return models_root(data_dir) / name / str(version)


def _record_path(data_dir, name: str, version: str) -> Path:
    return models_root(data_dir) / name / f"{version}.mlctl.json"


def registered_digest(data_dir, name: str, version: str) -> str | None:
    """The content digest registered under NAME:VERSION, or None when it is not (fully) registered."""
    try:
        record = read_json(_record_path(data_dir, name, version).read_bytes())
    except (OSError, ValueError):
        return None
    return record.get("content_digest") if model_dir(data_dir, name, version).is_dir() else None


def copy_tree(source: Path, dest: Path) -> None:
    """Copy a file, or exactly the files `mlctl.digests.list_files` lists for a folder (what is
    hashed is what is copied; links followed, empty folders not kept), to `dest`."""
    source = Path(source)
    if not source.is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
        return
    dest.mkdir(parents=True, exist_ok=True)
    for rel, full in list_files(source).items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(full, target)


def make_read_only(path: Path, *, dirs_too: bool = True) -> None:
    """chmod a-w every file (and folder when `dirs_too`) under `path`, `path` included, and make all readable
    by everyone (a+r, folders a+rx): instances may run as a user of their own (runtime/host/identities.py)."""

    def strip(p, add):
        os.chmod(p, (stat.S_IMODE(os.lstat(p).st_mode) & ~0o222) | add)

    def readable(p):
        os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) | 0o555)

    for root, dirnames, files in os.walk(path, topdown=False):
        for f in files:
            if not os.path.islink(os.path.join(root, f)):
                strip(os.path.join(root, f), 0o444)
        for d in dirnames:
            if not os.path.islink(os.path.join(root, d)):
                strip(os.path.join(root, d), 0o555) if dirs_too else readable(os.path.join(root, d))
    if path.is_file():
        strip(path, 0o444)
    elif dirs_too:
        strip(path, 0o555)
    else:
        readable(path)


def remove_read_only(path) -> None:
    """Delete a tree made read-only by make_read_only."""
    path = Path(path)
    if not path.exists():
        return
    for root, dirnames, _ in os.walk(path):
        os.chmod(root, stat.S_IMODE(os.stat(root).st_mode) | 0o700)
    shutil.rmtree(path)


def register_model(data_dir, name: str, version: str, source, content_digest: str) -> Path:
    """Copy `source` into the store as NAME:VERSION (idempotent for the same content) and return
    its AZUREML_MODEL_DIR. MlctlError when NAME:VERSION already holds other content or the source
    is missing."""
    source = Path(source)
    version = str(version)
    final = model_dir(data_dir, name, version)
    existing = registered_digest(data_dir, name, version)
    if existing == content_digest:
        return final
    if existing is not None:
        raise MlctlError(
            Diagnostic(
                f"Model {name}:{version} is already registered with other content",
                f"Registered versions are immutable (registered {existing[:19]}..., now {content_digest[:19]}...). "
                "Bump `version`, or leave `version` out so mlctl derives it from the content.",
                address=f"model.{name}",
            )
        )
    if not source.exists():
        raise MlctlError(
            Diagnostic(
                f"The model path {source} does not exist", "Fix `path` in the model's YAML.", address=f"model.{name}"
            )
        )
    ensure_folder(final.parent, what="registered models", base=data_dir)
    tmp = final.parent / f".{version}.tmp-{os.getpid()}"
    remove_read_only(tmp)
    if final.exists():  # a copy left by an interrupted registration (no record written)
        remove_read_only(final)
    tmp.mkdir()
    copy_tree(source, tmp / source.name)
    make_read_only(tmp)
    os.rename(tmp, final)
    record = {
        "name": name,
        "version": version,
        "content_digest": content_digest,
        "source": str(source),
        "registered": time.time(),
    }
    rec = _record_path(data_dir, name, version)
    write_atomic(rec, json.dumps(record, indent=2).encode(), mode=0o644)
    return final
