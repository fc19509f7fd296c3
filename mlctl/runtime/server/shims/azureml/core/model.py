"""Stand-in for azureml.core.model (SDK v1): ``Model.get_model_path`` inside a deployment."""

from __future__ import annotations

import os
from typing import Optional


class ModelNotFoundException(Exception):
    """No model of that name is under AZUREML_MODEL_DIR."""


def _single_entry(path: str) -> str:
    """A folder holding exactly one entry stands for that entry (a registered single file)."""
    if os.path.isdir(path):
        entries = [e for e in os.listdir(path) if not e.startswith(".")]
        if len(entries) == 1:
            return os.path.join(path, entries[0])
    return path


def _latest_version(path: str) -> Optional[str]:
    versions = [e for e in os.listdir(path) if e.isdigit() and os.path.isdir(os.path.join(path, e))]
    return max(versions, key=int) if versions else None


def _in_model_folder(named: str, version: Optional[int]) -> str:
    """Inside NAME's folder: VERSION (else the latest version folder, else the folder itself)."""
    if version is not None and os.path.isdir(os.path.join(named, str(version))):
        return _single_entry(os.path.join(named, str(version)))
    latest = _latest_version(named)
    return _single_entry(os.path.join(named, latest) if latest else named)


class Model:
    """The part of azureml.core.Model that scoring scripts use."""

    @staticmethod
    def get_model_path(model_name: str, version: Optional[int] = None, _workspace: object = None) -> str:
        """The path of a deployed model: ``$AZUREML_MODEL_DIR/NAME[/VERSION]``, the model directory
        itself when it is that model's folder, or the entry named NAME (or NAME.ext) inside it. Any other
        name raises ModelNotFoundException, as Azure's does (never "the only model there")."""
        root = os.environ.get("AZUREML_MODEL_DIR")
        if not root or not os.path.isdir(root):
            raise ModelNotFoundException(
                f"Model {model_name} not found: AZUREML_MODEL_DIR is not set to a directory ({root!r})"
            )
        named = os.path.join(root, model_name)
        if os.path.isdir(named):
            return _in_model_folder(named, version)
        if os.path.exists(named):
            return named
        entries = [e for e in os.listdir(root) if not e.startswith(".")]
        inner = os.path.join(root, entries[0], model_name) if len(entries) == 1 else ""
        if inner and os.path.isdir(inner):  # one registered folder holding several models as NAME/VERSION/
            return _in_model_folder(inner, version)
        parts = os.path.normpath(root).split(os.sep)
        if model_name in parts[-2:]:
            return _single_entry(root)
        for entry in sorted(os.listdir(root)):
            if os.path.splitext(entry)[0] == model_name:
                return os.path.join(root, entry)
        raise ModelNotFoundException(
            f"Model {model_name} not found in AZUREML_MODEL_DIR {root}; it holds: {', '.join(sorted(entries))}"
        )
