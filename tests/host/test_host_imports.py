"""The endpoint host is shared by every runtime: it imports none, and finds launchers by name."""

from __future__ import annotations

import ast
from pathlib import Path

import mlctl.runtime.host as host_package
from mlctl.runtime.host.launcher import LAUNCHERS

HOST_DIR = Path(host_package.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Pure: the absolute names of the modules a file of mlctl.runtime.host imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "mlctl.runtime" if node.level == 2 else "mlctl.runtime.host" if node.level == 1 else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.update([module] + [f"{module}.{alias.name}" for alias in node.names])
    return names


def test_no_host_module_imports_a_runtime():
    found = {
        path.name: sorted(
            n
            for n in imported_modules(path)
            if n.startswith("mlctl.runtime.") and not n.startswith(("mlctl.runtime.host", "mlctl.runtime.server"))
        )
        for path in sorted(HOST_DIR.glob("*.py"))
    }
    assert {name: names for name, names in found.items() if names} == {}
    assert len(found) > 15


def test_the_registry_names_the_launchers_of_the_local_docker_and_ray_runtimes():
    from mlctl.runtime.docker.launcher import Launcher as Containers
    from mlctl.runtime.local.launcher import Launcher
    from mlctl.runtime.ray.launcher import Launcher as ServeLauncher

    assert LAUNCHERS == {
        "process": "mlctl.runtime.local.launcher",
        "container": "mlctl.runtime.docker.launcher",
        "serve": "mlctl.runtime.ray.launcher",
    }
    assert (Launcher.name, Launcher.restarts_itself) == ("process", False)
    assert (Containers.name, Containers.restarts_itself) == ("container", False)
    # the host restarts a lost instance by taking a replica Serve started in its place (issue 28's direct path)
    assert (ServeLauncher.name, ServeLauncher.restarts_itself) == ("serve", False)
