"""The layers hold: no command, reconciler, profiling or progress module imports a specific runtime (they reach one
through mlctl.runtime.registry); the state, project-file and schema layers import nothing from mlctl.runtime
(what they share with it is below them: mlctl.observed, mlctl.serversettings, mlctl.runtimerecords); the
endpoint host names no runtime (its launchers come from the runtime records); and the scoring server imports
nothing but the standard library and aiohttp (it runs inside every model's environment)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mlctl"
GENERIC = {"mlctl.runtime", "mlctl.runtime.contract", "mlctl.observed", "mlctl.runtime.registry"}


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
                m.startswith("mlctl.runtime.server")
                or m in ("mlctl", "mlctl.runtime", "mlctl.__version__", "mlctl.serversettings")
                or m.startswith("mlctl.serversettings.")
            ):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {m}")
    assert offenders == []


def test_the_state_project_file_and_schema_layers_import_nothing_from_the_runtimes():
    paths = [*sorted((PACKAGE / "state").glob("*.py")), *sorted((PACKAGE / "schemas").glob("*.py"))]
    paths += [
        PACKAGE / "projectfile.py",
        PACKAGE / "projectpaths.py",
        PACKAGE / "observed.py",
        PACKAGE / "serversettings.py",
    ]
    paths += [PACKAGE / "runtimerecords.py"]
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {m}"
        for path in paths
        for m in sorted(imports(path))
        if m == "mlctl.runtime" or m.startswith("mlctl.runtime.")
    ]
    assert offenders == []


def test_the_endpoint_host_names_no_runtime():
    """Neither an import nor a module name in its text: the host knows launchers by the runtime records."""
    from test_runtime_layers import runtime_packages

    names = runtime_packages()
    offenders = []
    for path in sorted((PACKAGE / "runtime" / "host").rglob("*.py")):
        text = path.read_text()
        offenders += [f"{path.relative_to(PACKAGE.parent)}: {n}" for n in names if f"mlctl.runtime.{n}" in text]
        offenders += [
            f"{path.relative_to(PACKAGE.parent)}: {m}"
            for m in sorted(imports(path))
            if any(m == f"mlctl.runtime.{n}" or m.startswith(f"mlctl.runtime.{n}.") for n in names)
        ]
    assert offenders == []
