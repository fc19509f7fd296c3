"""The corpus's fixtures: the shared cache (MLCTL_CACHE; environments are shared between cases by digest) and
the cases' runs. The selected cases run concurrently (MLCTL_CORPUS_WORKERS at a time, default 3: a case waits
mostly on processes starting and on builds, and two cases naming one environment share its build under its
lock); each case's test then reports its own outcome."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from corpus_support import run_case


@pytest.fixture(scope="session", autouse=True)
def _session_cache(mlctl_cache):
    return mlctl_cache


@pytest.fixture(scope="session")
def corpus_runs(request, mlctl_cache, tmp_path_factory) -> dict:
    """{case name: None, or the exception its run raised} for every case selected in this session."""
    cases = {}
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "case" in callspec.params and item.originalname == "test_case":
            cases[callspec.params["case"].name] = callspec.params["case"]
    workers = max(1, int(os.environ.get("MLCTL_CORPUS_WORKERS", "3")))

    def one(case):
        times = TIMES.setdefault(case.name, {})
        start = time.monotonic()
        try:
            run_case(case, tmp_path_factory.mktemp(case.name), mlctl_cache, times)
        except BaseException as e:  # reported by the case's own test
            return e
        finally:
            times["total"] = time.monotonic() - start
        return None

    order = sorted(cases.values(), key=lambda c: not c.runs_first)  # the long ones first: the others beside them
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return {case.name: outcome for case, outcome in zip(order, pool.map(one, order))}


TIMES: dict[str, dict[str, float]] = {}  # case -> phase -> seconds (shown after the run)


def pytest_terminal_summary(terminalreporter):
    """Each case's seconds by phase, slowest first (the cases run concurrently: they overlap)."""
    if not TIMES:
        return
    terminalreporter.section("corpus cases: seconds by phase")
    for name, times in sorted(TIMES.items(), key=lambda kv: -kv[1].get("total", 0)):
        phases = "  ".join(f"{k} {v:.1f}" for k, v in times.items() if k != "total")
        terminalreporter.write_line(f"{times.get('total', 0):7.1f}  {name}: {phases}")
