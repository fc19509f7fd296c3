"""Normalization of conda files: the parts of an environment spec its image digest depends on."""

from __future__ import annotations

from loader_helpers import write_tree
from mlctl.schemas.environments import normalize_conda_dependency, parse_conda_file, normalize_pip_requirement


def test_conda_requirements():
    assert normalize_conda_dependency("numpy") == ("numpy", "")
    assert normalize_conda_dependency("numpy=1.26") == ("numpy", "==1.26.*")
    assert normalize_conda_dependency("numpy=1.26.*") == ("numpy", "==1.26.*")
    assert normalize_conda_dependency("numpy==1.26.4=py311_0") == ("numpy", "==1.26.4")
    assert normalize_conda_dependency("numpy 1.26 py311_0") == ("numpy", "==1.26.*")
    assert normalize_conda_dependency("conda-forge::scikit-learn >= 1.3") == ("scikit-learn", ">=1.3")
    assert normalize_conda_dependency("Python=3.11") == ("python", "==3.11.*")


def test_pip_requirements():
    assert normalize_pip_requirement("Joblib") == "joblib"
    assert normalize_pip_requirement("azureml_defaults >= 1.0") == "azureml-defaults>=1.0"
    assert normalize_pip_requirement('Foo.Bar[b, A] == 1.0 ; python_version <  "3.12"') == 'foo-bar[a,b]==1.0; python_version < "3.12"'
    assert normalize_pip_requirement("--extra-index-url https://x/simple") == "--extra-index-url https://x/simple"
    assert normalize_pip_requirement("git+https://github.com/x/y.git") == "git+https://github.com/x/y.git"


def test_parse_conda_file(tmp_path):
    write_tree(tmp_path, {"conda.yml": """\
name: anything
channels: [conda-forge, defaults, conda-forge]
dependencies:
  - python=3.11
  - scikit-learn=1.9
  - numpy
  - pip
  - pip:
      - joblib
      - Inference_Schema==1.7
"""})
    diags = []
    assert parse_conda_file(tmp_path / "conda.yml", diags) == {
        "python": "3.11", "channels": ["conda-forge", "defaults"],
        "conda_packages": ["numpy", "pip", "scikit-learn==1.9.*"],
        "pip_packages": ["inference-schema==1.7", "joblib"]}
    assert diags == []


def test_unreadable_dependencies_are_located(tmp_path):
    write_tree(tmp_path, {"conda.yml": "dependencies:\n  - numpy\n  - {conda: x}\n"})
    diags = []
    parse_conda_file(tmp_path / "conda.yml", diags)
    assert [(d.line, d.field) for d in diags] == [(3, "dependencies[1]")]
