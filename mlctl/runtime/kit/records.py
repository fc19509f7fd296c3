"""The kit's drivers of the kinds that are records on this machine whatever the runtime: models (the project's
model store) and environments (a recorded spec; what it builds to is the runtime's image driver's).

Each method is one order of `mlctl.runtime.contract`.
"""

from __future__ import annotations

from mlctl.runtime.contract import Unscalable
from mlctl.runtime.kit import store
from mlctl.observed import EnvironmentObserved, ModelObserved


class ModelDriver(Unscalable):
    """Registers models into the project's model store (immutable NAME/VERSION folders); a new
    version rolls in beside the old one, and registered versions outlive their deployments."""

    def create(self, resource, prior, ctx):
        a = dict(resource.attributes)
        ctx.progress(str(resource.address), f"registering {a['name']}:{a['version']} into the model store")
        path = store.register_model(ctx.data_dir, a["name"], a["version"], a["path"], a["content_digest"])
        return ModelObserved(model_dir=str(path), content_digest=a["content_digest"])

    def update(self, resource, prior, ctx):
        return self.create(resource, prior, ctx)

    roll = recreate = update

    def delete(self, address, prior, ctx, keep_identity=False):
        """Registered versions outlive their deployments; `mlctl cache prune` removes unused ones."""

    def read(self, address, prior, ctx):
        a = prior.attributes
        if store.registered_digest(ctx.data_dir, a["name"], a["version"]) != a.get("content_digest"):
            return None
        return ModelObserved(
            model_dir=str(store.model_dir(ctx.data_dir, a["name"], a["version"])),
            content_digest=a.get("content_digest"),
        )


class EnvironmentDriver(Unscalable):
    """An environment is a recorded spec; what it builds to is the image. `runtime` names the runtime in
    what it says; `uses_base_image`: whether that runtime's images start from the environment's `image`
    (containers do; a virtualenv does not, and says so)."""

    def __init__(self, runtime: str, uses_base_image: bool = False):
        self.runtime, self.uses_base_image = runtime, uses_base_image

    def create(self, resource, prior, ctx):
        a = dict(resource.attributes)
        ignored = bool(a.get("image")) and not self.uses_base_image
        if ignored:
            ctx.progress(
                str(resource.address),
                f"base image {a['image']!r} is not used by the {self.runtime} "
                "runtime (it builds a virtualenv from the conda file)",
            )
        return EnvironmentObserved(spec_digest=a.get("spec_digest"), not_used_by_runtime=["image"] if ignored else [])

    def update(self, resource, prior, ctx):
        return self.create(resource, prior, ctx)

    roll = recreate = update

    def delete(self, address, prior, ctx, keep_identity=False):
        pass

    def read(self, address, prior, ctx):
        return prior.observed
