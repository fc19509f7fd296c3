"""Requirements: conda and pip specs read into normalized PEP 508 requirements, for the loader and every runtime.

A conda file is read for its python version request, its conda packages and its pip packages.
The loader records them normalized (so an image digest depends on what is asked, not on how it is
spelled): conda packages as `name` + PEP 440 specifier (conda's `=1.2` is the prefix match
`==1.2.*`), pip packages parsed by `packaging` (canonical name, sorted extras, no spaces). A
runtime that installs from PyPI turns them into pip requirement lines with `requirements()`:
conda names mapped to PyPI names (`CONDA_TO_PYPI`), system libraries conda ships but PyPI does not
skipped with a note (`CONDA_ONLY`). Everything here is pure except `read_conda_file`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, Specifier
from packaging.utils import canonicalize_name

from mlctl.binarybounds import numpy_bound
from mlctl.errors import Diagnostic
from mlctl.masking import mask_url_credentials, url_credentials
from mlctl.pythonversions import below_floor
from mlctl.schemas.documents import read_document

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
CONDA_ONLY: frozenset[str] = frozenset(
    {
        "mkl",
        "mkl-include",
        "mkl-devel",
        "mkl-service",
        "mkl_fft",
        "mkl_random",
        "intel-openmp",
        "blas",
        "libblas",
        "libcblas",
        "liblapack",
        "liblapacke",
        "openblas",
        "libopenblas",
        "nomkl",
        "cudatoolkit",
        "cudatoolkit-dev",
        "cuda-toolkit",
        "cuda",
        "cuda-nvcc",
        "cuda-runtime",
        "cuda-version",
        "cudnn",
        "nccl",
        "magma",
        "pytorch-cuda",
        "pytorch-mutex",
        "cpuonly",
        "openmpi",
        "mpich",
        "impi_rt",
        "libgcc",
        "libgcc-ng",
        "libstdcxx",
        "libstdcxx-ng",
        "libgomp",
        "libgfortran",
        "libgfortran-ng",
        "libgfortran5",
        "_libgcc_mutex",
        "_openmp_mutex",
        "llvm-openmp",
        "gcc",
        "gxx",
        "gfortran",
        "gcc_linux-64",
        "gxx_linux-64",
        "make",
        "cmake-binary",
        "pkg-config",
        "openssl",
        "ca-certificates",
        "readline",
        "sqlite",
        "tk",
        "xz",
        "zlib",
        "zstd",
        "lz4-c",
        "ncurses",
        "libffi",
        "bzip2",
        "ld_impl_linux-64",
        "tzdata",
        "libuuid",
        "libnsl",
        "libzlib",
        "libsqlite",
        "libxcrypt",
        "icu",
        "libiconv",
        "libxml2",
        "hdf5",
        "libprotobuf",
        "arrow-cpp",
        "libarrow",
        "libopencv",
        "graphviz",
        "git",
        "nodejs",
        "libuv",
        "conda",
        "mamba",
    }
)

# Never installed into a virtualenv: the interpreter comes from the python version, pip with the venv.
NOT_PACKAGES: frozenset[str] = frozenset({"python", "pip", "setuptools", "wheel", "python-abi"})

# The pip options a conda file's `pip:` list may hold (uv reads them in a requirements file); any
# other option, a path, an editable install or a requirements file of its own is refused.
PIP_OPTIONS: frozenset[str] = frozenset({"--index-url", "--extra-index-url", "--find-links"})
PIP_ITEMS_HINT = (
    "A pip item is a requirement ('name', 'name[extra]>=1.2', 'name @ https://...') or one of "
    + ", ".join(sorted(PIP_OPTIONS))
    + " URL; write a URL's credentials as ${VAR} references "
    "(uv reads VAR from apply's environment) so no plan, state or build file holds them."
)

# pip packages mlctl replaces: its own scoring server stands in for Azure's.
REPLACED_BY_MLCTL: frozenset[str] = frozenset({"azureml-defaults", "azureml-inference-server-http"})

_PYPI = {canonicalize_name(k): v for k, v in CONDA_TO_PYPI.items()}
_CONDA_ONLY = frozenset(canonicalize_name(n) for n in CONDA_ONLY)

# conda match spec: [channel::]name[ version[ build]], name=version[=build], name==version, name>=version,
# name[version='>=1.2']
_CONDA = re.compile(r"^(?:(?P<channel>[^:\s]+)::)?(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")
_BRACKET_VERSION = re.compile(r"^\[\s*version\s*=\s*['\"]?([^'\"\]]+)['\"]?")
# what precedes a PEP 508 requirement's version specifier: the name and its extras
_NAME_AND_EXTRAS = re.compile(r"^\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*")


@dataclass(frozen=True)
class Requirements:
    """pip requirement lines for a virtualenv, and notes on what was mapped or skipped."""

    lines: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())


def conda_dependency(spec: str) -> tuple[str, str] | None:
    """Pure: a conda dependency -> (lower-case name, PEP 440 specifier or '').

    'numpy=1.26' -> ('numpy', '==1.26.*') (conda's '=' is a prefix match); 'numpy==1.26.4'
    -> ('numpy', '==1.26.4'); 'numpy 1.26' -> ('numpy', '==1.26.*'); "numpy[version='>=1.2']"
    -> ('numpy', '>=1.2'); build strings and channel prefixes are dropped. Already normalized
    specs come back unchanged. None when it cannot be parsed.
    """
    m = _CONDA.match(spec.strip())
    if not m:
        return None
    name, rest = m["name"].lower(), m["rest"].strip()
    if rest.startswith("["):
        bracket = _BRACKET_VERSION.match(rest)
        if not bracket:
            return name, ""  # other bracket keys (build=, channel=) say nothing of the version
        rest = bracket.group(1).strip()
    if not rest:
        return name, ""
    if rest[0] not in "=<>!~":
        rest = "=" + rest.split()[0]  # 'numpy 1.26 py_0' -> '=1.26'
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=")[0]  # drop '=build'
        version = version.removesuffix(".*").removesuffix("*")
        return name, f"=={version}.*" if version else ""
    if rest.startswith("=="):
        return name, "==" + rest[2:].split("=")[0].strip()
    return name, re.sub(r"\s+", "", rest)


def pip_option(text: str) -> tuple[str, str] | None:
    """Pure: (long option, value) of a pip item that is one of PIP_OPTIONS (`-i URL`,
    `--extra-index-url=URL`), or None."""
    m = re.fullmatch(r"(-i|-f|--[a-z-]+)(?:\s*=\s*|\s+)(\S+)", text.strip())
    if not m:
        return None
    option = {"-i": "--index-url", "-f": "--find-links"}.get(m[1], m[1])
    return (option, m[2]) if option in PIP_OPTIONS else None


def pip_item_problem(text: str) -> str | None:
    """Pure: why a conda file's `pip:` item is not accepted (None when it is): a PEP 508 requirement
    (`name[extras] specifiers ; marker`, or `name @ URL`), or one of PIP_OPTIONS with a URL; a URL's
    credentials only as `${VAR}` references. The reason quotes the item with credentials hidden."""
    shown = mask_url_credentials(text.strip())
    option = pip_option(text)
    if option is None:
        try:
            Requirement(text.strip())
        except InvalidRequirement:
            what = "a pip option mlctl does not pass on" if text.strip().startswith("-") else "not a requirement"
            return f"pip item '{shown}' is {what}"
    if url_credentials(text):
        return f"pip item '{shown}' holds a credential in its URL"
    return None


def pip_requirement(spec: str) -> str:
    """Pure: a pip line normalized with `packaging`: canonical name, extras sorted, specifiers without
    spaces in the order written, the marker in packaging's form. An accepted option (PIP_OPTIONS) is
    written `--long-name VALUE`; anything else is kept as written (`pip_item_problem` refuses it)."""
    text = spec.strip()
    option = pip_option(text)
    if option is not None:
        return " ".join(option)
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return text
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    if req.url:
        return f"{canonicalize_name(req.name)}{extras} @ {req.url}{' ' if marker else ''}{marker}"
    return canonicalize_name(req.name) + extras + _specifier_as_written(text) + marker


def _specifier_as_written(text: str) -> str:
    """Pure: the version specifier of a valid PEP 508 line, its clauses in the written order (a
    SpecifierSet forgets the order, and the order is part of the recorded spec)."""
    rest = _NAME_AND_EXTRAS.sub("", text.split(";", 1)[0], count=1).strip().removeprefix("(").removesuffix(")")
    try:
        return ",".join(str(Specifier(clause.strip())) for clause in rest.split(",") if clause.strip())
    except InvalidSpecifier:  # not expected once the line parsed; the set's own (sorted) form then
        return str(Requirement(text).specifier)


def requirement_name(line: str) -> str:
    """Pure: the canonical distribution name of a pip line ('' for options and other non-requirements)."""
    try:
        return canonicalize_name(Requirement(line.strip()).name)
    except InvalidRequirement:
        return ""


def pypi_name(conda_name: str) -> str:
    """Pure: the canonical PyPI name of a conda package ('py-xgboost' -> 'xgboost')."""
    return canonicalize_name(_PYPI.get(canonicalize_name(conda_name), conda_name))


def requirement_specifier(line: str, name: str) -> str:
    """Pure: the version specifier of pip line `line` when it names `name` ('' otherwise)."""
    try:
        req = Requirement(line.strip())
    except InvalidRequirement:
        return ""
    return str(req.specifier) if canonicalize_name(req.name) == name else ""


def python_request(specifier: str) -> str | None:
    """Pure: a python version request from the specifier of a conda `python` dependency
    ('==3.11.*' -> '3.11', '==3.11.7' -> '3.11.7', '>=3.9,<3.12' unchanged, '' -> None)."""
    if not specifier:
        return None
    if re.fullmatch(r"==[0-9.]+(\.\*)?", specifier):
        return specifier[2:].removesuffix(".*")
    return specifier


def pip_from_conda(spec: str) -> tuple[str | None, str | None]:
    """Pure: one conda dependency -> (pip requirement or None, note or None): the name mapped to
    PyPI's, conda-only system packages and the interpreter's own packages skipped."""
    parsed = conda_dependency(spec)
    if parsed is None or canonicalize_name(parsed[0]) in NOT_PACKAGES:
        return None, None
    name, specifier = parsed
    if canonicalize_name(name) in _CONDA_ONLY:
        return None, f"skipped conda-only package '{name}' (a system library; not installed from PyPI)"
    pypi = _PYPI.get(canonicalize_name(name), name)
    note = (
        f"conda package '{name}' installed as '{pypi}' from PyPI"
        if canonicalize_name(pypi) != canonicalize_name(name)
        else None
    )
    return pypi + specifier, note


def requirements(conda_packages, pip_packages, *, extra=()) -> Requirements:
    """Pure: the pip requirement lines for a virtualenv (conda packages mapped, pip packages as
    written, then those of `extra` not already named), with a note for each mapping or skip."""
    lines: list[str] = []
    notes: list[str] = []
    for spec in conda_packages:
        line, note = pip_from_conda(spec)
        if line:
            lines.append(line)
        if note:
            notes.append(note)
    for spec in pip_packages:
        spec = spec.strip()
        name = requirement_name(spec)
        if name in REPLACED_BY_MLCTL:
            notes.append(f"skipped pip package '{name}': mlctl's scoring server replaces it")
        elif spec and name not in NOT_PACKAGES:
            lines.append(spec)
    bound, why = numpy_bound(conda_packages, pip_packages)
    lines.extend(bound)
    notes.extend(why)
    present = {requirement_name(x) for x in lines}
    lines.extend(x for x in extra if requirement_name(x) not in present)
    return Requirements(tuple(lines), tuple(notes))


def read_conda_file(path, diags: list[Diagnostic]) -> dict | None:
    """{python, channels, conda_packages, pip_packages} from a conda YAML, normalized and sorted;
    None (with errors in `diags`, located by file and line) when unusable."""
    doc, problems = read_document(path)
    diags.extend(problems)
    if doc is None:
        return None
    data = doc.data
    if not isinstance(data, dict):
        diags.append(
            Diagnostic(
                "conda file is not a mapping",
                "A conda file has 'channels:' and 'dependencies:'.",
                file=doc.display,
                line=1,
            )
        )
        return None
    python, conda, pip = None, set(), set()
    channels = data.get("channels") or []
    deps = data.get("dependencies") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        diags.append(Diagnostic("'channels' must be a list of channel names", "", **doc.at(("channels",))))
        channels = []
    if not isinstance(deps, list):
        diags.append(
            Diagnostic(
                "'dependencies' must be a list",
                "List conda packages, and pip packages under '- pip:'.",
                **doc.at(("dependencies",)),
            )
        )
        deps = []
    for i, dep in enumerate(deps):
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            for j, item in enumerate(dep["pip"]):
                problem = pip_item_problem(str(item)) if str(item).strip() else None
                if problem:
                    diags.append(Diagnostic(problem, PIP_ITEMS_HINT, **doc.at(("dependencies", i, "pip", j))))
                elif str(item).strip():
                    pip.add(pip_requirement(str(item)))
            continue
        parsed = conda_dependency(str(dep)) if isinstance(dep, (str, int, float)) else None
        if parsed is None:
            diags.append(
                Diagnostic(
                    f"cannot read conda dependency {dep!r}",
                    "Write 'name', 'name=version' or a '- pip: [...]' list.",
                    **doc.at(("dependencies", i)),
                )
            )
            continue
        name, specifier = parsed
        if name == "python":
            python = python_request(specifier)
            if below_floor(python):
                diags.append(
                    Diagnostic(
                        f"'{dep}' asks for a Python older than the scoring server supports (3.7 and later)",
                        "mlctl's scoring server runs on Python 3.7 or later (3.7 with aiohttp 3.8); a 3.6 "
                        "environment cannot run it. Ask for python=3.7 or newer (scikit-learn 0.24, numpy 1.21 "
                        "and pandas 1.3 still install there); see docs/compatibility.md, 'Python versions'.",
                        **doc.at(("dependencies", i)),
                    )
                )
        else:
            conda.add(name + specifier)
    return {
        "python": python,
        "channels": list(dict.fromkeys(channels)),  # order is conda's priority: kept, duplicates dropped
        "conda_packages": sorted(conda),
        "pip_packages": sorted(pip),
    }
