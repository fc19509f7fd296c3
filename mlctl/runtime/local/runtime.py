"""The local runtime: instances are scoring-server processes on this machine, images are virtualenvs.

A composition of the kit: its virtualenv images and operations (`kit.virtualenvimages.VirtualenvRuntime`:
preflight, build logs, the shared cache), its host drivers with deployments on the "process" launcher
(`launcher.py`), and its record in `mlctl.runtime.records`.
"""

from __future__ import annotations


from mlctl import runtimerecords
from mlctl.resources import Kind
from mlctl.runtime.kit.drivers import DeploymentDriver, TrafficDriver, guarded
from mlctl.runtime.kit.endpoints import EndpointDriver
from mlctl.runtime.kit.records import EnvironmentDriver, ModelDriver
from mlctl.runtime.kit.virtualenvimages import ImageDriver, VirtualenvRuntime, virtualenv_spec


class LocalRuntime(VirtualenvRuntime):
    name = "local"

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


def runtime(settings) -> LocalRuntime:
    return LocalRuntime(settings)
