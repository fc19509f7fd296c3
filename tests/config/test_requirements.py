"""requirements.py: conda files read and normalized, conda names mapped to PyPI, conda-only packages skipped."""

from __future__ import annotations

import pytest

from loader_helpers import write_tree
from mlctl.requirements import (
    conda_dependency,
    pip_from_conda,
    pip_requirement,
    python_request,
    read_conda_file,
    requirement_name,
    requirements,
)

AZURE_CONDA = """\
name: model-env
channels:
  - conda-forge
dependencies:
  - python=3.8
  - numpy=1.21.2
  - pip=21.2.4
  - scikit-learn=0.24.2
  - scipy=1.7.1
  - pytorch::pytorch>=1.10
  - mkl
  - cudatoolkit=11.3
  - pip:
    - azureml-defaults==1.38.0
    - inference-schema[numpy-support]==1.3.0
    - joblib==1.0.1
"""


def test_conda_dependencies():
    assert conda_dependency("numpy") == ("numpy", "")
    assert conda_dependency("numpy=1.26") == ("numpy", "==1.26.*")
    assert conda_dependency("numpy=1.26.*") == ("numpy", "==1.26.*")
    assert conda_dependency("numpy==1.26.4=py311_0") == ("numpy", "==1.26.4")
    assert conda_dependency("numpy 1.26 py311_0") == ("numpy", "==1.26.*")
    assert conda_dependency("numpy 1.8*") == ("numpy", "==1.8.*")
    assert conda_dependency("conda-forge::scikit-learn >= 1.3") == ("scikit-learn", ">=1.3")
    assert conda_dependency("numpy >=1.2, <2") == ("numpy", ">=1.2,<2")
    assert conda_dependency("numpy[version='>=1.2']") == ("numpy", ">=1.2")
    assert conda_dependency("numpy[build=py39_0]") == ("numpy", "")
    assert conda_dependency("Python=3.11") == ("python", "==3.11.*")
    assert conda_dependency("::") is None


def test_normalized_conda_dependencies_read_back_unchanged():
    for spec in ("numpy==1.26.*", "numpy==1.26.4", "numpy>=1.2,<2", "numpy"):
        name, specifier = conda_dependency(spec)
        assert name + specifier == spec


def test_pip_requirements():
    assert pip_requirement("Joblib") == "joblib"
    assert pip_requirement("azureml_defaults >= 1.0") == "azureml-defaults>=1.0"
    assert (
        pip_requirement('Foo.Bar[b, A] == 1.0 ; python_version <  "3.12"')
        == 'foo-bar[a,b]==1.0; python_version < "3.12"'
    )
    assert pip_requirement("numpy >= 1.2 , < 2") == "numpy>=1.2,<2"  # the written order, not sorted
    assert pip_requirement("numpy < 2 , >= 1.2") == "numpy<2,>=1.2"
    assert pip_requirement("numpy (>=1.2)") == "numpy>=1.2"
    assert pip_requirement("pkg @ https://example.org/pkg-1.0.whl") == "pkg @ https://example.org/pkg-1.0.whl"
    assert pip_requirement("--extra-index-url https://x/simple") == "--extra-index-url https://x/simple"
    assert pip_requirement("git+https://github.com/x/y.git") == "git+https://github.com/x/y.git"
    assert pip_requirement("./wheels/pkg.whl") == "./wheels/pkg.whl"


def test_requirement_names():
    assert requirement_name("Ruamel_Yaml>=0.17") == "ruamel-yaml"
    assert requirement_name("uvloop; sys_platform != 'win32'") == "uvloop"
    assert requirement_name("--index-url https://x/simple") == ""


def test_python_requests():
    assert python_request("==3.11.*") == "3.11"
    assert python_request("==3.11.7") == "3.11.7"
    assert python_request(">=3.9,<3.12") == ">=3.9,<3.12"
    assert python_request("") is None


@pytest.mark.parametrize(
    "spec, line",
    [
        ("numpy", "numpy"),
        ("numpy=1.21", "numpy==1.21.*"),
        ("numpy==1.21.2", "numpy==1.21.2"),
        ("numpy 1.8*", "numpy==1.8.*"),
        ("numpy>=1.2,<2", "numpy>=1.2,<2"),
        ("numpy >=1.2", "numpy>=1.2"),
        ("numpy=1.2.*", "numpy==1.2.*"),
        ("conda-forge::py-xgboost=1.7=py39_0", "xgboost==1.7.*"),
        ("numpy[version='>=1.2']", "numpy>=1.2"),
        ("matplotlib-base", "matplotlib"),
        ("ruamel_yaml=0.17", "ruamel.yaml==0.17.*"),
        ("python", None),
        ("pip", None),
        ("python_abi", None),
        ("openmpi=4", None),
    ],
)
def test_pip_from_conda(spec, line):
    assert pip_from_conda(spec)[0] == line


def test_read_conda_file(tmp_path):
    write_tree(
        tmp_path,
        {
            "conda.yml": """\
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
"""
        },
    )
    diags = []
    assert read_conda_file(tmp_path / "conda.yml", diags) == {
        "python": "3.11",
        "channels": ["conda-forge", "defaults"],
        "conda_packages": ["numpy", "pip", "scikit-learn==1.9.*"],
        "pip_packages": ["inference-schema==1.7", "joblib"],
    }
    assert diags == []


def test_python_version_requests_in_files(tmp_path):
    for text, python in [
        ("dependencies: [python==3.11.7]", "3.11.7"),
        ("dependencies: ['python>=3.9,<3.12']", ">=3.9,<3.12"),
        ("dependencies: ['python 3.10']", "3.10"),
        ("dependencies: [numpy]", None),
    ]:
        (tmp_path / "conda.yml").write_text(text)
        diags = []
        assert read_conda_file(tmp_path / "conda.yml", diags)["python"] == python, text
        assert diags == []


def test_unreadable_dependencies_are_located(tmp_path):
    write_tree(tmp_path, {"conda.yml": "dependencies:\n  - numpy\n  - {conda: x}\n"})
    diags = []
    read_conda_file(tmp_path / "conda.yml", diags)
    assert [(d.line, d.field) for d in diags] == [(3, "dependencies[1]")]


def test_malformed_conda_files_are_located(tmp_path):
    (tmp_path / "conda.yml").write_text("dependencies: [numpy\n")
    diags = []
    assert read_conda_file(tmp_path / "conda.yml", diags) is None
    assert diags and diags[0].file.endswith("conda.yml") and diags[0].severity == "error"
    (tmp_path / "conda.yml").write_text("- numpy\n")
    diags = []
    assert read_conda_file(tmp_path / "conda.yml", diags) is None
    assert [(d.summary, d.line) for d in diags] == [("conda file is not a mapping", 1)]


def test_requirements_map_skip_and_note(tmp_path):
    (tmp_path / "conda.yml").write_text(AZURE_CONDA)
    parsed = read_conda_file(tmp_path / "conda.yml", [])
    assert parsed["python"] == "3.8"
    reqs = requirements(parsed["conda_packages"], parsed["pip_packages"], extra=("aiohttp>=3.9", "Joblib"))
    assert reqs.lines == (
        "numpy==1.21.2.*",
        "torch>=1.10",
        "scikit-learn==0.24.2.*",
        "scipy==1.7.1.*",
        "inference-schema[numpy-support]==1.3.0",
        "joblib==1.0.1",
        "aiohttp>=3.9",
    )
    assert reqs.notes == (
        "skipped conda-only package 'cudatoolkit' (a system library; not installed from PyPI)",
        "skipped conda-only package 'mkl' (a system library; not installed from PyPI)",
        "conda package 'pytorch' installed as 'torch' from PyPI",
        "skipped pip package 'azureml-defaults': mlctl's scoring server replaces it",
    )
