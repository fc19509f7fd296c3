"""The local runtime: instances are scoring-server processes on this machine, images are virtualenvs.

A composition of the kit: its virtualenv images and operations (`kit.virtualenvimages.VirtualenvRuntime`:
preflight, build logs, the shared cache), its host drivers with deployments on the "process" launcher
(`launcher.py`), and its record in `mlctl.runtime.records`.
"""

from __future__ import annotations


from mlctl import runtimerecords
from mlctl.errors import MlctlError
from mlctl.resources import Kind
from mlctl.runtime.kit.drivers import DeploymentDriver, TrafficDriver, guarded
from mlctl.runtime.kit.endpoints import EndpointDriver
from mlctl.runtime.kit.records import EnvironmentDriver, ModelDriver
from mlctl.runtime.kit.virtualenvimages import ImageDriver, VirtualenvRuntime, python_problems, virtualenv_spec
from mlctl.runtime.local.limits import confinement_problems, resource_notes, resource_problems


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

    def preflight(self, resources) -> None:
        """MlctlError listing every image no interpreter here satisfies and every deployment whose resources
        this machine cannot give or enforce (file and line), and the machine's refusal to confine instances."""
        resources = list(resources)
        problems = python_problems(resources) + resource_problems(resources)
        problems += confinement_problems(resources, self.settings)
        if problems:
            raise MlctlError(*problems)

    def plan_notes(self, resources) -> list:
        """Which deployments' CPU requests and limits this machine does not enforce, and the capacity warning of
        every hosted runtime (the deployments' maximums against this machine)."""
        resources = list(resources)
        try:
            notes = resource_notes(resources)
        except Exception:  # notes are best effort
            notes = []
        return notes + super().plan_notes(resources)


def runtime(settings) -> LocalRuntime:
    return LocalRuntime(settings)
