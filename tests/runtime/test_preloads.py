"""What a fork server imports before forking, read without running user code: the scoring script's top-level
imports (ast) and the modules a pickled or joblib model names (pickletools), minus the code folder's own."""

from __future__ import annotations

import io
import os
import pickle

import joblib
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from mlctl.runtime.kit.preloads import modules_to_preload, pickle_modules, script_imports


@pytest.fixture(scope="module")
def model():
    X, y = load_diabetes(return_X_y=True)
    return Ridge().fit(X, y)


def test_top_level_imports_only_never_run():
    source = (
        "import os, numpy as np\nfrom sklearn.linear_model import Ridge\nfrom . import sibling\n"
        "try:\n    import torch\nexcept ImportError:\n    pass\n"
        "def init():\n    import pandas\nraise SystemExit('never run')\n"
    )
    assert script_imports(source) == ["os", "numpy", "sklearn.linear_model"]
    assert script_imports("def broken(:\n") == []


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_pickle_names_its_classes_modules_at_every_protocol(model, protocol):
    names = pickle_modules(pickle.dumps(model, protocol=protocol))
    assert names[0] == "sklearn.linear_model._ridge" and "numpy" in names


def test_a_joblib_file_and_a_truncated_or_foreign_file_give_what_they_can(model):
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    assert "sklearn.linear_model._ridge" in pickle_modules(buffer.getvalue())
    data = pickle.dumps(model, protocol=4)
    assert pickle_modules(data[:40]) in ([], ["sklearn.linear_model._ridge"])
    assert pickle_modules(b"\x89PNG\r\n\x1a\n not a pickle") == []


def test_the_code_folders_own_modules_symlinks_and_hostile_names_are_left_out(tmp_path, model):
    code, models = tmp_path / "code", tmp_path / "model"
    code.mkdir()
    models.mkdir()
    (code / "score.py").write_text("import json\nimport utils\nimport helpers.x\nimport sklearn\nimport azureml.core\n")
    (code / "utils.py").write_text("")
    (code / "helpers").mkdir()
    (models / "model.pkl").write_bytes(pickle.dumps(model))
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps(io.StringIO()))  # names _io: must not be read through the link
    os.symlink(outside, models / "linked.pkl")
    got = modules_to_preload(str(code), "score.py", str(models))
    assert got[:2] == ["json", "sklearn"] and "sklearn.linear_model._ridge" in got
    assert not {"utils", "helpers.x", "azureml.core", "_io"} & set(got)
