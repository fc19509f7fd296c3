"""The corpus harness: real example files from public repositories, applied and scored as their users would.

A case is a folder `cases/NAME/` holding `case.yml` (where the files came from, and what to run), the
repository's `LICENSE` and `files/`, the repository's files at their repository paths (so relative paths
between them hold). tests/corpus/README.md describes the fields. The harness copies `files/` to a temporary
folder, trains the case's tiny model there (scikit-learn's bundled data, in a virtualenv of the packages the
case names, cached by their digest), then runs the real CLI: (convert,) validate, plan, apply, invoke with the
example's own sample request, destroy; and calls the scoring script in-process, in the virtualenv mlctl built
for the deployment, to check the endpoint's answer is the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
REPO = HERE.parents[1]
INPROCESS = HERE / "inprocess.py"
LICENSES = {"Azure/azureml-examples", "Azure/MachineLearningNotebooks"}


@dataclass
class Invoke:
    """One scoring request: the example's sample `request` sent to `endpoint` (`deployment` by header), and
    the in-process call of `script` with `model` laid out under AZUREML_MODEL_DIR as Azure lays it out."""

    endpoint: str
    request: str
    model: str
    script: str = ""  # none for call "mlflow": a model deployed without a script
    deployment: str | None = None
    call: str = "raw"
    image: str | None = None  # called in a container of this image (a custom container's own Python)


@dataclass
class Case:
    name: str
    folder: Path
    source: dict
    project: str
    config: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    convert: list[str] = field(default_factory=list)
    train: list[dict] = field(default_factory=list)
    invoke: list[Invoke] = field(default_factory=list)
    expect_error: dict | None = None
    known_failure: dict | None = None  # {reason, contains}: a mlctl bug this case meets, named until fixed
    runtime: str = "local"  # another: the harness writes the project file (mlctl.yaml) that chooses it
    runs_first: bool = False  # a long case, started before the others (conftest.py)
    images: list[dict] = field(default_factory=list)  # built before validate, as the example builds them (images.py)

    @classmethod
    def read(cls, folder: Path) -> Case:
        data = yaml.safe_load((folder / "case.yml").read_text())
        invokes = [Invoke(**x) for x in data.pop("invoke", [])]
        return cls(name=folder.name, folder=folder, invoke=invokes, **data)


def all_cases() -> list[Case]:
    return [Case.read(p) for p in sorted(CASES.iterdir()) if (p / "case.yml").is_file()]


def mlctl(cwd: Path, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, in the project folder `cwd`."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlctl.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"mlctl {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def find_interpreter(version: str) -> str:
    """A Python X.Y on this machine that runs (pyenv's versions, then PATH, where pyenv's shims may not run),
    never downloaded."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [str(p) for p in sorted(root.glob(f"{version}.*/bin/python{version}"), reverse=True)]
    candidates += [p for p in [shutil.which(f"python{version}")] if p]
    for candidate in candidates:
        if subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0:
            return candidate
    raise AssertionError(f"the corpus needs a Python {version} (pyenv install {version}, or on PATH)")


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive flock on `path` (cases run concurrently share the training cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def training_python(train: dict, cache: Path) -> str:
    """The interpreter of a virtualenv holding the training packages `train` names (cached by their digest,
    shared by every case asking the same): a model trained there loads in the case's environment."""
    key = hashlib.sha256(json.dumps([train["python"], sorted(train["packages"])]).encode()).hexdigest()[:16]
    venv = cache / "corpus-train" / key
    python = venv / "bin" / "python"
    with _locked(venv.with_name(key + ".lock")):
        if not (venv / ".complete").exists():
            _make_venv(train, venv, python)
    return str(python)


def _make_venv(train: dict, venv: Path, python: Path) -> None:
    """Build the training virtualenv at `venv` (a half-built one from a killed run is started again)."""
    shutil.rmtree(venv, ignore_errors=True)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    interp = find_interpreter(train["python"])
    subprocess.run(["uv", "venv", "-q", "--python", interp, str(venv)], check=True, timeout=300, env=env)
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(python), *train["packages"]], check=True, timeout=600, env=env
    )
    (venv / ".complete").write_text("")


def trained(train: dict, cache: Path) -> Path:
    """The model `train` describes, trained once per training script, Python and packages (cached by their
    digest: the scripts are deterministic, and cases sharing a model share one training)."""
    script = HERE / "train" / train["script"]
    spec = [train["python"], sorted(train["packages"]), script.read_text()]
    out = cache / "corpus-models" / hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16] / "model"
    with _locked(out.with_name("lock")):
        if not out.exists():
            partial = out.with_name("model.partial")
            subprocess.run([training_python(train, cache), str(script), str(partial)], check=True, timeout=300)
            partial.rename(out)
    return out


def prepare(case: Case, root: Path, cache: Path) -> Path:
    """The case's files copied under `root`, its model trained; returns the project folder. Two cases of one
    repository may be prepared under one `root` (the files they both hold are the repository's, alike)."""
    shutil.copytree(case.folder / "files", root, dirs_exist_ok=True)
    (root / ".git").mkdir(exist_ok=True)  # the repository's work tree: its `../model-1/` paths stay inside it
    for train in case.train:
        out = root / train["output"]
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(trained(train, cache), out)
    if case.runtime != "local":
        (root / case.project / "mlctl.yaml").write_text(f"runtime: {case.runtime}\n")
    return root / case.project


def environment_python(project: Path, endpoint: str, deployment: str) -> str:
    """The interpreter of the virtualenv mlctl built for a deployment (read from the state file)."""
    state = json.loads((project / ".mlctl" / "state.json").read_text())["resources"]
    env = state[f"deployment.{endpoint}.{deployment}"]["attributes"]["environment"]
    return str(Path(state[f"image.{env}"]["observed"]["path"]) / "bin" / "python")


def in_process(python: str, project: Path, call: Invoke, scratch: Path) -> object:
    """The script's answer to the request, called in-process in `python` with the model laid out under
    AZUREML_MODEL_DIR as Azure lays out a registered file or folder (`azureml-models/NAME/VERSION/BASENAME`)."""
    model = (project / call.model).resolve()
    model_dir = scratch / "azureml-models" / "model" / "1"
    model_dir.mkdir(parents=True)
    (shutil.copytree if model.is_dir() else shutil.copy)(model, model_dir / model.name)
    argv = [
        str(INPROCESS),
        str((project / call.script).resolve()) if call.script else "-",
        str(model_dir),
        call.call,
        str((project / call.request).resolve()),
    ]
    if call.image:
        from images import run_in

        out = run_in(call.image, ["python", *argv], [HERE, scratch.parent])
        return json.loads(out.strip().splitlines()[-1])["answer"]
    out = subprocess.run(
        [python, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 0, f"in-process call failed:\n{out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1])["answer"]


def run_case(case: Case, scratch: Path, cache: Path, times: dict | None = None) -> None:
    """One case, as its users would run it: (convert,) validate, plan, apply, invoke with the example's own
    sample request (the answer equal to the script's in-process), destroy; or the documented error it expects.
    AssertionError saying what differed. `times` gets the seconds each phase took (the corpus's durations)."""
    times = {} if times is None else times
    if case.runtime == "docker" or case.images:
        _require_engine(case)
    with _timed(times, "prepare"):
        project = prepare(case, scratch / "files", cache)
    files = [a for f in case.config for a in ("-f", f)]
    if case.convert:
        mlctl(project, "convert", "v1", *case.convert)
    built = []
    try:
        with _timed(times, "images"):
            for spec in case.images:
                built.append(_image_builder().build_example(_engine(), spec, scratch / "files"))
        if case.expect_error:
            with _timed(times, "expect_error"):
                _expect_error(case, project, files)
            return
        with _timed(times, "validate+plan"):
            mlctl(project, *files, "validate", *case.args)
            plan = mlctl(project, *files, "plan", *case.args)
        assert "to add" in plan.stdout, plan.stdout
        with _timed(times, "apply"):
            mlctl(project, *files, "apply", "--auto-approve", *case.args)
        with _timed(times, "invoke+in-process"):
            for n, call in enumerate(case.invoke):
                _check_invoke(case, project, files, call, scratch / f"inprocess-{n}")
    finally:
        with _timed(times, "destroy"):
            mlctl(project, *files, "destroy", "--auto-approve", *case.args, check=False)
            for tag in built:
                _image_builder().remove(_engine(), tag)
    state = json.loads((project / ".mlctl" / "state.json").read_text())
    assert state["resources"] == {}, list(state["resources"])


def _require_engine(case: Case) -> None:
    """A case on the docker runtime needs a Docker engine: without one it is skipped, but fails in CI (CI set),
    as the docker tests do."""
    import docker
    import pytest

    try:
        docker.from_env().ping()
    except Exception as e:  # docker.errors.DockerException, or the socket's own error
        if os.environ.get("CI"):
            raise AssertionError(f"{case.name}: CI must run the docker runtime's cases on a real engine: {e}") from e
        pytest.skip(f"{case.name}: no Docker engine ({e})")


def _image_builder():
    import images

    return images


def _engine():
    import docker

    return docker.from_env()


def _check_invoke(case: Case, project: Path, files: list[str], call: Invoke, scratch: Path) -> None:
    """The endpoint's answer to the example's request equals the model's called in-process."""
    header = ["--deployment", call.deployment] if call.deployment else []
    answer = mlctl(project, *files, "invoke", call.endpoint, "--request-file", call.request, *header)
    served = json.loads(answer.stdout)
    python = (
        "" if call.image else environment_python(project, call.endpoint, call.deployment or _only_deployment(project))
    )
    expected = in_process(python, project, call, scratch)
    assert served == expected, f"{case.name}: the endpoint answered {served!r}, in-process {expected!r}"


@contextlib.contextmanager
def _timed(times: dict, phase: str):
    start = time.monotonic()
    try:
        yield
    finally:
        times[phase] = times.get(phase, 0.0) + time.monotonic() - start


def _only_deployment(project: Path) -> str:
    state = json.loads((project / ".mlctl" / "state.json").read_text())["resources"]
    names = [k.split(".", 2)[2] for k in state if k.startswith("deployment.")]
    assert len(names) == 1, names
    return names[0]


def _expect_error(case: Case, project: Path, files: list[str]) -> None:
    """The documented error: the command named fails with exit 1, no traceback, every expected phrase."""
    want = case.expect_error
    for command in ("validate", "plan", "apply"):
        args = ["apply", "--auto-approve"] if command == "apply" else [command]
        out = mlctl(project, *files, *args, *case.args, check=command != want["command"])
        if command == want["command"]:
            assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
            for phrase in want["contains"]:
                assert phrase in out.stdout + out.stderr, (phrase, out.stderr)
            return
