"""Runtimes are peers: no runtime package (mlctl/runtime/NAME/ with a runtime module) imports another one's,
and the kit, the host, the contract and the scoring server import none of them. What runtimes share is in the
kit (mlctl/runtime/kit/)."""

from __future__ import annotations

from pathlib import Path

from test_layers import PACKAGE, imports

RUNTIME = PACKAGE / "runtime"
SHARED = ("kit", "host", "server")  # packages every runtime may use, that belong to none


def runtime_packages() -> list[str]:
    """The runtime packages: the folders of mlctl/runtime/ that are not shared."""
    return sorted(p.name for p in RUNTIME.iterdir() if (p / "__init__.py").exists() and p.name not in SHARED)


def offenders(package: str, others: list[str]) -> list[str]:
    found = []
    for path in sorted((RUNTIME / package).rglob("*.py")) if (RUNTIME / package).is_dir() else [RUNTIME / package]:
        for m in sorted(imports(path)):
            if any(m == f"mlctl.runtime.{o}" or m.startswith(f"mlctl.runtime.{o}.") for o in others):
                found.append(f"{path.relative_to(PACKAGE.parent)}: {m}")
    return found


def test_the_runtime_packages_are_found():
    assert {"local", "docker", "ray"} <= set(runtime_packages())


def test_no_runtime_package_imports_another():
    names = runtime_packages()
    bad = [line for name in names for line in offenders(name, [o for o in names if o != name])]
    assert bad == []


def test_the_kit_host_and_server_import_no_runtime_package():
    names = runtime_packages()
    bad = [line for shared in SHARED for line in offenders(shared, names)]
    bad += [line for f in RUNTIME.glob("*.py") for line in offenders(f.name, names)]
    assert bad == []


def test_the_check_sees_one_runtime_importing_another():
    """The check itself can fail: a module of the ray package importing the local one's is found."""
    probe = RUNTIME / "ray" / "_probe_for_test.py"
    probe.write_text("def f():\n    from mlctl.runtime.local import launcher\n")
    try:
        assert f"{Path('mlctl/runtime/ray/_probe_for_test.py')}: mlctl.runtime.local" in offenders("ray", ["local"])
    finally:
        probe.unlink()
