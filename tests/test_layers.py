"""The layers hold: no command, reconciler, profiling or progress module imports a specific runtime (they reach one
through mlctl.runtime.registry), and the scoring server imports nothing but the standard library
and aiohttp (it runs inside every model's environment)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mlctl"
GENERIC = {"mlctl.runtime", "mlctl.runtime.contract", "mlctl.runtime.observed", "mlctl.runtime.registry"}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (lazy imports inside functions count)."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def runtime_specific(module: str) -> bool:
    """Is `module` part of one runtime (anything under mlctl.runtime but the generic contract)?"""
    return (
        module.startswith("mlctl.runtime.")
        and module not in GENERIC
        and not any(module.startswith(g + ".") for g in GENERIC - {"mlctl.runtime"})
    )


def test_commands_and_reconciler_import_no_specific_runtime():
    offenders = []
    for layer in ("commands", "reconciler", "profiling", "progress"):
        for path in sorted((PACKAGE / layer).glob("*.py")):
            bad = sorted(m for m in imports(path) if runtime_specific(m))
            if bad:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {', '.join(bad)}")
    assert offenders == []


def test_the_check_sees_a_lazy_import_of_a_runtime(tmp_path):
    """The check itself can fail: an import inside a function is found."""
    f = PACKAGE / "commands" / "_probe_for_test.py"
    f.write_text("def f():\n    from mlctl.runtime.local import envs\n")
    try:
        assert any(runtime_specific(m) for m in imports(f))
    finally:
        f.unlink()


def test_the_scoring_server_imports_only_the_standard_library_and_aiohttp():
    import sys

    allowed = set(sys.stdlib_module_names) | {
        "aiohttp",
        "multidict",
        "yarl",
        "uvloop",
        "orjson",
        "mlctl",
        "azureml",
        "azureml_inference_server_http",
        "inference_schema",
    }
    offenders = []
    for path in sorted((PACKAGE / "runtime" / "server").rglob("*.py")):
        for m in imports(path):
            top = m.split(".")[0]
            if top and top not in allowed:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {m}")
            if top == "mlctl" and not (
                m.startswith("mlctl.runtime.server") or m in ("mlctl", "mlctl.runtime", "mlctl.__version__")
            ):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {m}")
    assert offenders == []
