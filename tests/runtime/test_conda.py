"""conda.py: conda files parsed, conda names mapped to PyPI, conda-only packages skipped."""

import pytest

from mlctl.errors import MlctlError
from mlctl.runtime.local.conda import (
    CondaSpec,
    conda_version,
    parse_conda_file,
    parse_conda_text,
    pip_requirement,
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


def test_parse_azure_conda_file():
    spec = parse_conda_text(AZURE_CONDA, "conda.yml")
    assert spec == CondaSpec(
        name="model-env", python="3.8", channels=("conda-forge",),
        conda_packages=("numpy=1.21.2", "pip=21.2.4", "scikit-learn=0.24.2", "scipy=1.7.1",
                        "pytorch::pytorch>=1.10", "mkl", "cudatoolkit=11.3"),
        pip_packages=("azureml-defaults==1.38.0", "inference-schema[numpy-support]==1.3.0", "joblib==1.0.1"),
    )


def test_requirements_map_skip_and_note():
    spec = parse_conda_text(AZURE_CONDA)
    reqs = requirements(spec.conda_packages, spec.pip_packages, extra=("aiohttp>=3.9",))
    assert reqs.lines == ("numpy==1.21.2.*", "scikit-learn==0.24.2.*", "scipy==1.7.1.*", "torch>=1.10",
                          "inference-schema[numpy-support]==1.3.0", "joblib==1.0.1", "aiohttp>=3.9")
    assert reqs.notes == (
        "conda package 'pytorch' installed as 'torch' from PyPI",
        "skipped conda-only package 'mkl' (a system library; not installed from PyPI)",
        "skipped conda-only package 'cudatoolkit' (a system library; not installed from PyPI)",
        "skipped pip package 'azureml-defaults': mlctl's scoring server replaces it",
    )


@pytest.mark.parametrize("spec, line", [
    ("numpy", "numpy"),
    ("numpy=1.21", "numpy==1.21.*"),
    ("numpy==1.21.2", "numpy==1.21.2"),
    ("numpy 1.8.1", "numpy==1.8.1"),
    ("numpy 1.8*", "numpy==1.8.*"),
    ("numpy>=1.2,<2", "numpy>=1.2,<2"),
    ("numpy >=1.2", "numpy>=1.2"),
    ("numpy=1.2.*", "numpy==1.2.*"),
    ("conda-forge::py-xgboost=1.7=py39_0", "xgboost==1.7.*"),
    ("numpy[version='>=1.2']", "numpy>=1.2"),
    ("matplotlib-base", "matplotlib"),
    ("python", None),
    ("pip", None),
    ("openmpi=4", None),
])
def test_pip_requirement(spec, line):
    assert pip_requirement(spec)[0] == line


def test_python_versions():
    assert parse_conda_text("dependencies: [python==3.11.7]").python == "3.11.7"
    assert parse_conda_text("dependencies: ['python>=3.9,<3.12']").python == ">=3.9,<3.12"
    assert parse_conda_text("dependencies: [numpy]").python is None
    assert conda_version("python 3.10") == "==3.10"


def test_bad_conda_file_names_file_and_field(tmp_path):
    bad = tmp_path / "conda.yml"
    bad.write_text("dependencies:\n  - numpy\n  - {pip: oops, other: 1}\n")
    with pytest.raises(MlctlError) as e:
        parse_conda_file(bad)
    assert "dependencies[1]" in str(e.value) and str(bad) in str(e.value)
    bad.write_text("dependencies: [numpy\n")
    with pytest.raises(MlctlError, match="not valid YAML"):
        parse_conda_file(bad)
    with pytest.raises(MlctlError, match="Cannot read the conda file"):
        parse_conda_file(tmp_path / "missing.yml")
