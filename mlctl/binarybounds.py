"""The bounds conda's builds carry and PyPI's pins lose: numpy < 2 for binary packages built before numpy 2.0.

(And numpy < 1.24 for the few whose code still used the aliases numpy 1.24 removed.)

A conda package compiled against numpy 1.x depends on `numpy <2` in conda's own metadata, so `conda install
scikit-learn=1.2.2 numpy` gets numpy 1.26. The same pin read as a PyPI requirement does not carry that bound:
the resolver takes numpy 2.x, and the old wheel fails at import with `numpy.dtype size changed`. So an
environment whose conda dependencies pin such a package to a release older than its first numpy-2 build, and
that does not pin numpy itself, gets `numpy<2` added, with a build note saying why (shown in the plan).
`NUMPY2_FIRST` is the table: the first release of each package whose wheels were built against numpy 2.0
(from each project's release notes). Everything here is pure.
"""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

# PyPI name -> its first release built against numpy 2 (numpy 2.0.0 was released on 2024-06-16)
NUMPY2_FIRST: dict[str, str] = {
    "scikit-learn": "1.4.2",
    "scipy": "1.13.0",
    "pandas": "2.2.2",
    "matplotlib": "3.8.4",
    "scikit-image": "0.23.0",
    "statsmodels": "0.14.2",
    "numba": "0.60.0",
    "pyarrow": "16.0.0",
    "h5py": "3.11.0",
    "xgboost": "2.1.0",
    "shap": "0.46.0",
    "opencv-python": "4.10.0.84",
    "opencv-python-headless": "4.10.0.84",
    "tensorflow": "2.18.0",
    "torch": "2.3.0",
    "onnxruntime": "1.19.0",
    "pywavelets": "1.6.0",
    "astropy": "6.1.0",
    "gensim": "4.3.3",
    "numexpr": "2.10.0",
    "bottleneck": "1.4.0",
    "tables": "3.10.0",
}
# PyPI name -> its first release that no longer uses the aliases numpy 1.24 removed (np.int, np.float, ...)
NUMPY124_FIRST: dict[str, str] = {
    "scikit-learn": "0.24.0",
}
# (the bound, what it guards against, its table), tightest first: the first that applies is added
BOUNDS = (
    ("numpy<1.24", "numpy 1.24 (which removed np.int, np.float and the other aliases it uses)", NUMPY124_FIRST),
    (
        "numpy<2",
        "numpy 2.0 (conda's builds of it require numpy<2; from PyPI it would get numpy 2 and fail with "
        "'numpy.dtype size changed')",
        NUMPY2_FIRST,
    ),
)


def _older_only(specifier: str, first: Version) -> bool:
    """Pure: does `specifier` allow only releases older than `first` (so built against numpy 1)?"""
    try:
        spec = SpecifierSet(specifier)
    except InvalidSpecifier:
        return False
    if not str(spec):
        return False
    named = []
    for clause in spec:
        try:
            named.append(Version(clause.version.removesuffix(".*")))
        except InvalidVersion:
            return False
    candidates = [first, Version("9999")] + [v for v in named if v >= first]
    return not any(spec.contains(v, prereleases=True) for v in candidates)


def numpy_bound(conda_packages, pip_packages) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Pure: (requirement lines to add, build notes) for an environment's conda packages ("name" + PEP 440
    specifier) and pip requirement lines: the tightest of BOUNDS that a conda pin needs, unless numpy itself
    is pinned somewhere."""
    from mlctl.requirements import conda_dependency, pypi_name, requirement_specifier

    pins = []
    for spec in conda_packages:
        parsed = conda_dependency(spec)
        if parsed is None:
            continue
        name, specifier = pypi_name(parsed[0]), parsed[1]
        if name == "numpy" and specifier:
            return (), ()
        pins.append((name, parsed[0] + specifier, specifier))
    if any(requirement_specifier(x, "numpy") for x in pip_packages):
        return (), ()
    for bound, why, table in BOUNDS:
        old = [
            shown for name, shown, specifier in pins if name in table and _older_only(specifier, Version(table[name]))
        ]
        if old:
            return (bound,), (f"added {bound}: {', '.join(old)} predates {why}",)
    return (), ()
