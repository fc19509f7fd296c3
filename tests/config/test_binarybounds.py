"""Conda's binary bounds kept on PyPI (mlctl.binarybounds) and Python requests read as PEP 440 with the server's
floor (mlctl.pythonversions): literal expectations, and the plan's build notes through the real loader."""

from __future__ import annotations

import pytest

from mlctl.binarybounds import numpy_bound
from mlctl.projectpaths import Project
from mlctl.pythonversions import below_floor, satisfies, specifier
from mlctl.requirements import requirements
from mlctl.schemas.load import load_config


@pytest.mark.parametrize(
    "conda, pip, added",
    [
        (["numpy", "pandas", "scikit-learn==1.2.2.*"], ["joblib"], "numpy<2"),  # the inference-schema example
        (["numpy", "scikit-learn==0.22.1", "scipy"], [], "numpy<1.24"),  # uses np.int
        (["scikit-learn<1.3"], [], "numpy<2"),
        (["py-xgboost==1.7.*"], [], "numpy<2"),  # conda's name, PyPI's table
        (["numpy==1.23.5.*", "scikit-learn==1.2.2.*"], [], None),  # numpy pinned: as written
        (["scikit-learn==1.2.2.*"], ["numpy==1.26.4"], None),
        (["numpy==2.3.1.*", "scikit-learn==1.7.0.*"], [], None),
        (["scikit-learn"], [], None),  # unpinned: the newest, built for numpy 2
        (["scikit-learn>=1.0"], [], None),
        (["scikit-learn==1.5.*"], [], None),
    ],
)
def test_numpy_bound(conda, pip, added):
    lines, notes = numpy_bound(conda, pip)
    assert lines == ((added,) if added else ())
    assert bool(notes) == bool(added)
    if added:
        assert notes[0].startswith(f"added {added}: ")
        reqs = requirements(conda, pip)
        assert added in reqs.lines and notes[0] in reqs.notes  # what every runtime installs


def test_build_notes_in_the_plan_and_the_digest(tmp_path):
    shared = tmp_path / "m"
    shared.mkdir()
    (shared / "model.pkl").write_text("m")
    (shared / "score.py").write_text("def init(): pass\ndef run(x): return x\n")
    conda = tmp_path / "conda.yml"
    (tmp_path / "endpoint.yml").write_text("kind: endpoint\nname: ep-one\n")
    (tmp_path / "blue.yml").write_text(
        "kind: deployment\nname: blue\nendpoint_name: ep-one\nmodel:\n  path: m/model.pkl\n"
        "code_configuration:\n  code: m\n  scoring_script: score.py\nenvironment:\n  conda_file: conda.yml\n"
    )
    digests = {}
    for numpy in ("numpy", "numpy=1.26"):
        conda.write_text(f"dependencies:\n  - python=3.10\n  - scikit-learn=1.2.2\n  - {numpy}\n")
        config = load_config(Project.at(tmp_path, state_path=tmp_path / "s.json"))
        assert not config.errors, config.errors
        image = config.resource("image.ep-one-blue-env").attributes
        digests[numpy] = image["spec_digest"]
        notes = image.get("build_notes")
        assert (notes is not None) == (numpy == "numpy"), image
    assert digests["numpy"] != digests["numpy=1.26"]


@pytest.mark.parametrize(
    "version, request_, ok",
    [
        ((3, 11, 7), "<=3.11", False),
        ((3, 11, 7), ">3.11", True),
        ((3, 11, 7), "=3.11", True),
        ((3, 11, 7), "3.11.7", True),
        ((3, 11, 6), "3.11.7", False),
        ((3, 12, 0), ">=3.9,<3.12", False),
    ],
)
def test_python_requests_are_pep_440(version, request_, ok):
    assert satisfies(version, request_) is ok


def test_the_server_floor_is_3_7():
    assert [r for r in ("3.6", "3.6.1", "<3.7", "2.7", "==3.6.*") if not below_floor(r)] == []
    assert [r for r in ("3.7", "3.7.16", ">=3.6", "3.11", None) if below_floor(r)] == []
    assert str(specifier("=3.11")) == "==3.11.*" and str(specifier("3.11.7")) == "==3.11.7"


def test_plan_reports_a_missing_interpreter_as_apply_does(tmp_path):
    """A first plan (no state yet) runs the runtime's preflight as apply does: the same error, before anything."""
    import subprocess
    import sys
    from pathlib import Path

    import shutil

    shutil.copytree(Path(__file__).parent / "bad" / "_shared", tmp_path / "shared")
    shared = "shared"
    (tmp_path / "ep.yml").write_text("kind: endpoint\nname: ep-one\n")
    (tmp_path / "blue.yml").write_text(
        f"kind: deployment\nname: blue\nendpoint_name: ep-one\nmodel:\n  path: {shared}/model\n"
        f"code_configuration:\n  code: {shared}/onlinescoring\n  scoring_script: score.py\n"
        "environment:\n  conda_file: conda.yml\n"
    )
    (tmp_path / "conda.yml").write_text("dependencies:\n  - python=3.99\n")
    outs = []
    for args in (["plan"], ["apply", "--auto-approve"]):
        out = subprocess.run(
            [sys.executable, "-m", "mlctl.cli", "-C", str(tmp_path), *args], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        outs.append([line for line in out.stderr.splitlines() if line.startswith(("Error", "  at"))])
    assert outs[0] == outs[1] and "No Python interpreter on this machine satisfies python 3.99" in outs[0][0]
    assert outs[0][1] == "  at blue.yml:9, image.ep-one-blue-env"
    assert not (tmp_path / ".mlctl" / "run").exists()
