"""The contract suite's project harness: a split project and the Project value with the runtime chosen."""

from __future__ import annotations

from pathlib import Path

from e2e_support import SplitProject

from mlctl.projectpaths import Project


class Harness:
    """A split project, the Project value the engine takes (with the runtime chosen), and the runtime."""

    def __init__(self, root: Path, runtime_name: str):
        self.split = SplitProject(root, "ctr")
        self.runtime_name = runtime_name
        self.project = Project.at(root, runtime_override=runtime_name)

    def write(self, **deployments):
        """write(blue={"count": 1}, green={...}) with all traffic on the first deployment."""
        first = next(iter(deployments))
        self.split.write({first: 100}, deployments)

    @property
    def runtime(self):
        from mlctl.reconciler.operations import project_runtimes

        return project_runtimes(self.project).main
