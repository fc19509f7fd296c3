"""MLflow models deployed without a script (Azure's no-code MLflow deployment): the environment a model's
MLmodel names (its conda.yaml, else its requirements.txt and python_env.yaml) read as an environment spec,
and the built-in scoring code (mlctl/builtin/mlflow/score.py) that serves it.

Two choices, said in the plan's note: `mlflow` is installed as `mlflow-skinny` of the same version (scoring
needs mlflow.pyfunc only, not the tracking server and UI, whose dependencies are most of mlflow's weight), and
an exact `python=3.X.Y` is relaxed to `3.X` (any patch release runs the model's wheels).
"""

from __future__ import annotations

import re
from pathlib import Path

from mlctl.errors import Diagnostic
from mlctl.schemas.documents import read_document

CODE = Path(__file__).resolve().parents[1] / "builtin" / "mlflow"
SCRIPT = "score.py"
MODEL_TYPE = "mlflow_model"
NO_CODE = Path(__file__).resolve().parents[1] / "builtin" / "nocode"  # a custom container's (it has no script)
NO_SCRIPT = "README.md"


def _mlmodel(model_path: Path, where: dict, diags: list[Diagnostic]) -> dict | None:
    mlmodel = model_path / "MLmodel"
    if not model_path.is_dir() or not mlmodel.is_file():
        diags.append(
            Diagnostic(
                f"the mlflow_model {model_path} has no MLmodel file",
                "An MLflow model is the folder mlflow.<flavor>.save_model wrote (it holds MLmodel): point "
                "the model's path at it, or give the deployment a code_configuration and an environment.",
                **where,
            )
        )
        return None
    doc, problems = read_document(mlmodel)
    diags.extend(problems)
    if doc is None or not isinstance(doc.data, dict):
        return None
    pyfunc = (doc.data.get("flavors") or {}).get("python_function")
    if not isinstance(pyfunc, dict):
        diags.append(
            Diagnostic(
                f"the MLflow model {model_path} has no python_function flavor, so it cannot be served without "
                "a scoring script",
                "Save it with a flavor that offers python_function (mlflow.sklearn, mlflow.pyfunc, ...), or give "
                "the deployment a code_configuration and an environment.",
                file=doc.display,
                line=doc.line(("flavors",)),
            )
        )
        return None
    return doc.data


def _env_files(model_path: Path, pyfunc: dict) -> tuple[Path | None, Path | None, Path | None]:
    """(conda.yaml, requirements.txt, python_env.yaml) the model names or holds, each None when absent."""
    env = pyfunc.get("env")
    conda = env if isinstance(env, str) else (env or {}).get("conda") if isinstance(env, dict) else None
    venv = (env or {}).get("virtualenv") if isinstance(env, dict) else None

    def inside(name: str | None) -> Path | None:
        if not isinstance(name, str):
            return None
        p = (model_path / name).resolve()
        return p if p.is_file() and model_path.resolve() in p.parents else None

    return (
        inside(conda) or inside("conda.yaml"),
        inside("requirements.txt"),
        inside(venv) or inside("python_env.yaml"),
    )


def _skinny(pip: list[str]) -> tuple[list[str], list[str]]:
    """Pure: (pip lines with mlflow as mlflow-skinny of the same specifier, notes)."""
    from mlctl.requirements import requirement_name  # packaging: imported only when an MLflow model is read

    out, notes = [], []
    for line in pip:
        if requirement_name(line) == "mlflow":
            skinny = re.sub(r"^\s*mlflow(\[[^\]]*\])?", "mlflow-skinny", line, count=1, flags=re.I)
            notes.append(f"'{line}' installed as '{skinny}' (scoring needs mlflow.pyfunc only)")
            out.append(skinny)
        else:
            out.append(line)
    if not any(requirement_name(x) == "mlflow-skinny" for x in out):
        out.append("mlflow-skinny")
        notes.append("the model lists no mlflow: mlflow-skinny added")
    return sorted(out), notes


def _minor(python: str | None) -> str | None:
    m = re.fullmatch(r"(\d+\.\d+)\.\d+", python or "")
    return m.group(1) if m else python


def _requirements_txt(path: Path) -> list[str]:
    from mlctl.requirements import pip_requirement

    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(pip_requirement(line))
    return lines


def mlflow_environment(model_path: Path, where: dict, diags: list[Diagnostic]) -> tuple[dict, list[str]] | None:
    """({python, channels, conda_packages, pip_packages}, notes) of an MLflow model's own environment; None
    (with errors in `diags`) when the model folder is not a servable MLflow model."""
    from mlctl.requirements import read_conda_file

    data = _mlmodel(model_path, where, diags)
    if data is None:
        return None
    pyfunc = data["flavors"]["python_function"]
    conda, reqs, python_env = _env_files(model_path, pyfunc)
    if conda is not None:
        parsed = read_conda_file(conda, diags)
        if parsed is None:
            return None
        source = conda.name
    elif reqs is not None:
        python = pyfunc.get("python_version")
        if python_env is not None:
            doc, _ = read_document(python_env)
            if doc is not None and isinstance(doc.data, dict) and doc.data.get("python"):
                python = str(doc.data["python"])
        parsed = {"python": python, "channels": [], "conda_packages": [], "pip_packages": _requirements_txt(reqs)}
        source = reqs.name
    else:
        diags.append(
            Diagnostic(
                f"the MLflow model {model_path} names no environment (no conda.yaml, no requirements.txt)",
                "Save the model with mlflow (it writes both), or give the deployment an environment and a "
                "code_configuration.",
                **where,
            )
        )
        return None
    pip, notes = _skinny(parsed["pip_packages"])
    python = _minor(parsed["python"])
    if python != parsed["python"]:
        notes.append(f"python {parsed['python']} relaxed to {python}")
    return {**parsed, "python": python, "pip_packages": pip}, [f"environment from {source}", *notes]
