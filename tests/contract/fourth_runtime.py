"""A throwaway fourth runtime, written from docs/architecture.md ("Where a new runtime plugs in") alone: a copy
of the local runtime whose launcher is the kit's process launcher under another name, shipped as a package of
its own with an `mlctl.runtimes` entry point (a real dist-info on a path, found by importlib.metadata, in this
process and in every process started with that path, such as its endpoint hosts).

It imports only the kit, the contract's values (Kind) and the record type.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NAME = "fourth"
PACKAGE = "mlctl_fourth"

FILES = {
    f"{PACKAGE}/__init__.py": '''"""The fourth runtime: the kit, virtualenv images, the process launcher renamed."""
from mlctl.runtimerecords import RuntimeRecord

RECORD = RuntimeRecord(
    "fourth",
    "mlctl_fourth.runtime",
    {"type": "object", "additionalProperties": False, "properties": {}},
    launcher="fourth-process",
    launcher_module="mlctl_fourth.launcher",
)
''',
    f"{PACKAGE}/runtime.py": '''"""Step 1: a package that composes the kit."""
from mlctl import runtimerecords
from mlctl.resources import Kind
from mlctl.runtime.kit.drivers import DeploymentDriver, TrafficDriver, guarded
from mlctl.runtime.kit.endpoints import EndpointDriver
from mlctl.runtime.kit.records import EnvironmentDriver, ModelDriver
from mlctl.runtime.kit.virtualenvimages import ImageDriver, VirtualenvRuntime, virtualenv_spec


class FourthRuntime(VirtualenvRuntime):
    name = "fourth"

    def __init__(self, settings=None):
        super().__init__(settings)
        self.drivers = guarded(
            {
                Kind.MODEL: ModelDriver(),
                Kind.ENVIRONMENT: EnvironmentDriver(self.name),
                Kind.IMAGE: ImageDriver(),
                Kind.ENDPOINT: EndpointDriver(),
                Kind.DEPLOYMENT: DeploymentDriver(virtualenv_spec, runtimerecords.launcher_of(self.name)),
                Kind.TRAFFIC: TrafficDriver(),
            }
        )


def runtime(settings):
    return FourthRuntime(settings)
''',
    f"{PACKAGE}/launcher.py": '''"""Step 3: its launcher, the kit's process launcher under its own name."""
from mlctl.runtime.kit import processlauncher


class Launcher(processlauncher.Launcher):
    name = "fourth-process"
''',
    f"{PACKAGE}-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: fourth-runtime\nVersion: 0.1\n",
    f"{PACKAGE}-0.1.dist-info/entry_points.txt": "[mlctl.runtimes]\nfourth = mlctl_fourth:RECORD\n",
    f"{PACKAGE}-0.1.dist-info/RECORD": "",
}


def write_package(where: Path) -> Path:
    """The package and its dist-info (step 2: the entry point naming its record) under `where`."""
    for rel, text in FILES.items():
        path = where / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return where


def install(where: Path, monkeypatch) -> None:
    """Put `where` on this process's path and on PYTHONPATH (the endpoint hosts it starts), and have mlctl
    read the entry points again."""
    from mlctl import runtimerecords

    monkeypatch.syspath_prepend(str(where))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(where), os.environ.get("PYTHONPATH")])))
    runtimerecords.installed.cache_clear()
    monkeypatch.setattr(sys, "path", list(sys.path))


def uninstall() -> None:
    from mlctl import runtimerecords

    runtimerecords.installed.cache_clear()
