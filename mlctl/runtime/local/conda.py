"""Conda specs as pip requirements: parse a conda file, map conda names to PyPI, skip conda-only packages.

The local runtime builds virtualenvs, not conda environments, so a conda file is read for its
python version, its conda packages (mapped to PyPI names by `CONDA_TO_PYPI`, or skipped when
they are system libraries conda ships but pip does not: `CONDA_ONLY`) and its pip packages.
Everything here is pure except `parse_conda_file`, which reads the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError

# conda package name -> PyPI distribution name, where they differ.
CONDA_TO_PYPI: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "py-lightgbm": "lightgbm",
    "py-catboost": "catboost",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "pytables": "tables",
    "python-graphviz": "graphviz",
    "tensorflow-base": "tensorflow",
    "tensorflow-cpu": "tensorflow",
    "keras-base": "keras",
    "pyqt": "PyQt5",
    "ruamel_yaml": "ruamel.yaml",
    "python-kubernetes": "kubernetes",
    "python-flatbuffers": "flatbuffers",
}

# Conda packages that are system libraries or conda machinery, not Python distributions:
# a virtualenv gets them from the system (or the wheels bundle them), so they are skipped.
CONDA_ONLY: frozenset[str] = frozenset({
    "mkl", "mkl-include", "mkl-devel", "mkl-service", "mkl_fft", "mkl_random", "intel-openmp",
    "blas", "libblas", "libcblas", "liblapack", "liblapacke", "openblas", "libopenblas", "nomkl",
    "cudatoolkit", "cudatoolkit-dev", "cuda-toolkit", "cuda", "cuda-nvcc", "cuda-runtime",
    "cuda-version", "cudnn", "nccl", "magma", "pytorch-cuda", "pytorch-mutex", "cpuonly",
    "openmpi", "mpich", "impi_rt", "libgcc", "libgcc-ng", "libstdcxx", "libstdcxx-ng", "libgomp",
    "libgfortran", "libgfortran-ng", "libgfortran5", "_libgcc_mutex", "_openmp_mutex", "llvm-openmp",
    "gcc", "gxx", "gfortran", "gcc_linux-64", "gxx_linux-64", "make", "cmake-binary", "pkg-config",
    "openssl", "ca-certificates", "readline", "sqlite", "tk", "xz", "zlib", "zstd", "lz4-c",
    "ncurses", "libffi", "bzip2", "ld_impl_linux-64", "tzdata", "libuuid", "libnsl", "libzlib",
    "libsqlite", "libxcrypt", "icu", "libiconv", "libxml2", "hdf5", "libprotobuf", "arrow-cpp",
    "libarrow", "libopencv", "graphviz", "git", "nodejs", "libuv", "conda", "mamba",
})

# Never installed into a virtualenv: the interpreter comes from the python version, pip with the venv.
NOT_PACKAGES: frozenset[str] = frozenset({"python", "pip", "setuptools", "wheel", "python_abi"})

# pip packages mlctl replaces: its own scoring server stands in for Azure's.
REPLACED_BY_MLCTL: frozenset[str] = frozenset({"azureml-defaults", "azureml-inference-server-http"})

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_PYPI = {_canonical(k): v for k, v in CONDA_TO_PYPI.items()}
_CONDA_ONLY = frozenset(_canonical(n) for n in CONDA_ONLY)


@dataclass(frozen=True)
class CondaSpec:
    """What a conda file asks for. `python` is a version request ("3.11", ">=3.9") or None."""

    name: str | None = None
    python: str | None = None
    channels: tuple[str, ...] = ()
    conda_packages: tuple[str, ...] = ()
    pip_packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Requirements:
    """pip requirement lines for a virtualenv, and notes on what was mapped or skipped."""

    lines: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())


def conda_name(spec: str) -> str:
    """Pure: the package name of a conda match spec ("conda-forge::numpy>=1.2" -> "numpy")."""
    spec = spec.strip().split("::")[-1]
    m = _NAME.match(spec)
    return m.group(0).lower() if m else ""


def conda_version(spec: str) -> str:
    """Pure: the version constraint of a conda match spec as a pip specifier ("" when none).

    `=1.2` and `1.2*` are conda's fuzzy matches (pip `==1.2.*`); `==1.2`, `>=1.2,<2` pass through;
    `name 1.2` (space form) is exact; build strings (`=1.2=py39_0`) are dropped.
    """
    spec = spec.strip().split("::")[-1]
    rest = spec[len(_NAME.match(spec).group(0)):] if _NAME.match(spec) else spec
    rest = rest.strip()
    if not rest:
        return ""
    bracket = re.search(r"\[\s*version\s*=\s*['\"]?([^'\"\]]+)['\"]?", rest)
    if bracket:
        rest = bracket.group(1).strip()
    elif rest.startswith("["):
        return ""
    fuzzy = False
    if rest.startswith("=") and not rest.startswith("=="):
        rest, fuzzy = rest[1:], True
    if " " in rest and not rest.startswith(("=", "<", ">", "!", "~")):
        rest = rest.split()[0]          # "1.2 py39_0": version then build
    elif " " in rest:
        rest = rest.replace(" ", "")
    if fuzzy:
        rest = rest.split("=")[0]       # "1.2=py39_0": drop the build string
    clauses = []
    for clause in rest.split(","):
        clause = clause.strip()
        if not clause:
            continue
        if clause[0] in "=<>!~":
            clauses.append(clause[:-1] + ".*" if clause.endswith("*") and not clause.endswith(".*") else clause)
            continue
        version = clause.rstrip("*").rstrip(".")
        clauses.append(f"=={version}.*" if (fuzzy or clause.endswith("*")) else f"=={version}")
    return ",".join(clauses)


def pip_requirement(spec: str) -> tuple[str | None, str | None]:
    """Pure: one conda match spec -> (pip requirement or None, note or None)."""
    name = conda_name(spec)
    if not name or name in NOT_PACKAGES:
        return None, None
    if _canonical(name) in _CONDA_ONLY:
        return None, f"skipped conda-only package '{name}' (a system library; not installed from PyPI)"
    pypi = _PYPI.get(_canonical(name), name)
    note = f"conda package '{name}' installed as '{pypi}' from PyPI" if _canonical(pypi) != _canonical(name) else None
    return pypi + conda_version(spec), note


def python_request(spec: str) -> str | None:
    """Pure: the python version request of a conda `python...` spec ("python=3.11" -> "3.11")."""
    version = conda_version(spec)
    if not version:
        return None
    if re.fullmatch(r"==[0-9.]+(\.\*)?", version):
        return version[2:].removesuffix(".*")
    return version


def requirements(conda_packages, pip_packages, *, extra=()) -> Requirements:
    """Pure: the pip requirement lines for a virtualenv (conda packages mapped, pip packages as
    written, then `extra`), with a note for each mapping or skip."""
    lines: list[str] = []
    notes: list[str] = []
    for spec in conda_packages:
        line, note = pip_requirement(spec)
        if line:
            lines.append(line)
        if note:
            notes.append(note)
    for spec in pip_packages:
        spec = spec.strip()
        name = conda_name(spec)
        if name in REPLACED_BY_MLCTL:
            notes.append(f"skipped pip package '{name}': mlctl's scoring server replaces it")
        elif spec and name not in NOT_PACKAGES:
            lines.append(spec)
    present = {conda_name(x) for x in lines}
    lines.extend(x for x in extra if conda_name(x) not in present)
    return Requirements(tuple(lines), tuple(notes))


def parse_conda_text(text: str, file: str = "<conda file>") -> CondaSpec:
    """Pure: a conda environment file's text -> CondaSpec. MlctlError (file, line, field) when malformed."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise MlctlError(Diagnostic("The conda file is not valid YAML", str(e).splitlines()[0],
                                    file=file, line=mark.line + 1 if mark else None)) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise MlctlError(Diagnostic("A conda file must be a mapping with 'dependencies'",
                                    "Write it as 'name:', 'channels:' and 'dependencies:' keys.", file=file, line=1))
    deps = doc.get("dependencies") or []
    channels = doc.get("channels") or []
    if not isinstance(deps, list):
        raise MlctlError(Diagnostic("'dependencies' must be a list", file=file, field="dependencies"))
    if not isinstance(channels, list):
        raise MlctlError(Diagnostic("'channels' must be a list", file=file, field="channels"))
    python, conda, pip = None, [], []
    for i, dep in enumerate(deps):
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            pip.extend(str(p).strip() for p in dep["pip"] if str(p).strip())
        elif isinstance(dep, (str, int, float)):
            dep = str(dep).strip()
            if conda_name(dep) == "python":
                python = python_request(dep)
            elif dep:
                conda.append(dep)
        else:
            raise MlctlError(Diagnostic(
                "A dependency must be a package spec or a 'pip:' list",
                f"found {dep!r}", file=file, field=f"dependencies[{i}]"))
    return CondaSpec(doc.get("name"), python, tuple(str(c) for c in channels), tuple(conda), tuple(pip))


def parse_conda_file(path) -> CondaSpec:
    """Read and parse a conda environment file (see parse_conda_text)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise MlctlError(Diagnostic("Cannot read the conda file", e.strerror or str(e), file=str(p))) from None
    return parse_conda_text(text, str(p))
