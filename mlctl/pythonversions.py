"""Python version requests: what a conda or pip-style request means (PEP 440), and the scoring server's floor.

A request is what an environment asks for: a release series ("3.11", conda's "=3.11": any 3.11.x), one
release ("3.11.7"), or PEP 440 clauses (">=3.9,<3.12"; conda's "=3.11" clauses become "==3.11.*"). It is
matched with `packaging.specifiers`, so ">3.11" accepts 3.11.7 and "<=3.11" does not, as pip would.

The floor: the scoring server runs on Python 3.7 and later (3.7 with the aiohttp 3.8 line, 3.8+ with aiohttp
3.9+). It cannot run on 3.6 (it needs `from __future__ import annotations`, dataclasses and the aiohttp
releases that still install there are years past their last fix), so a request that only 3.6 or older can
meet is refused when the configuration is read, with the conda file's line. docs/compatibility.md says why.
Everything here is pure.
"""

from __future__ import annotations

import re

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

SERVER_FLOOR = (3, 7)
# releases a request is tried against to decide whether anything at or above the floor can meet it
_SERIES = [(3, minor) for minor in range(SERVER_FLOOR[1], 31)]


def specifier(request: str) -> SpecifierSet:
    """Pure: the PEP 440 specifier set of a request ("3.11" -> "==3.11.*", "=3.11" -> "==3.11.*",
    "3.11.7" -> "==3.11.7", ">=3.9,<3.12" unchanged). InvalidSpecifier when it is not one."""
    clauses = []
    for clause in request.replace(" ", "").split(","):
        m = re.fullmatch(r"(=?)([0-9]+(?:\.[0-9]+)*)(\.\*)?", clause)
        if not m:  # PEP 440 as written ("==3.11", ">=3.9", "~=3.10", "!=3.11.*")
            clauses.append(clause) if clause else None
        elif m.group(3) or m.group(1) or len(m.group(2).split(".")) < 3:  # a series: conda's "=3.11", "3.11"
            clauses.append(f"=={m.group(2)}.*")
        else:  # one release: "3.11.7"
            clauses.append(f"=={m.group(2)}")
    return SpecifierSet(",".join(clauses))


def satisfies(version: tuple[int, ...], request: str | None) -> bool:
    """Pure: does a Python `version` (3, 11, 7) meet `request` ("3.11", ">=3.9,<3.12", None: anything)?
    ValueError when `request` is not a version request."""
    if not request:
        return True
    try:
        spec = specifier(request)
    except InvalidSpecifier:
        raise ValueError(f"'{request}' is not a Python version request") from None
    return spec.contains(Version(".".join(map(str, version))), prereleases=True)


def below_floor(request: str | None) -> bool:
    """Pure: can only a Python older than the server's floor (3.7) meet `request`? (False when it is not a
    version request: that error is reported where the request is used.)"""
    if not request:
        return False
    try:
        spec = specifier(request)
    except InvalidSpecifier:
        return False
    named = [Version(c.version.removesuffix(".*")) for c in spec if re.fullmatch(r"[0-9.]+(\.\*)?", c.version)]
    candidates = [Version(f"{major}.{minor}.{patch}") for major, minor in _SERIES for patch in range(50)]
    candidates += [v for v in named if v.release[:2] >= SERVER_FLOOR]  # "3.99": not older, merely unknown
    return not any(spec.contains(v, prereleases=True) for v in candidates)
