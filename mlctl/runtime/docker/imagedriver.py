"""The docker runtime's image driver: the orders of `mlctl.runtime.contract` for `image.NAME`, carried
out by `images.ensure_image` (built once per engine, shared across projects), reported as ImageObserved
(tag, image id, base and why, Python, frozen packages). An image removed outside mlctl reads as gone; one
built on another base than the one chosen now reads `on_chosen_base=False` (drift: it is rebuilt).
"""

from __future__ import annotations

from mlctl.errors import MlctlError
from mlctl.runtime.contract import DriverError, RuntimeContext, Unscalable
from mlctl.observed import ImageObserved
from mlctl.runtime.docker import baseimage, custom, engine, images


class ImageDriver(Unscalable):
    """Builds (or finds) an environment's container image; `delete` leaves it in the engine for other
    projects (`mlctl cache prune` removes unused ones)."""

    def create(self, resource, prior, ctx: RuntimeContext) -> ImageObserved:
        address = str(resource.address)
        request = images.ImageRequest.from_attributes(resource.attributes)
        client = engine.client_of(ctx)
        try:
            built = images.ensure_image(client, request, ctx.settings, say=lambda m: ctx.progress(address, m))
        except engine.engine_errors() as e:
            raise engine.failure(f"building {address}", e) from None
        except DriverError as e:
            raise DriverError(f"{address}: {e.summary}", e.detail, e.log_tail) from None
        images.record(ctx.data_dir, request.spec_digest, built)
        images.mark_used(built.image_id)
        ctx.progress(address, f"image {built.tag}: base image {built.base} ({built.base_reason})")
        return ImageObserved.from_json(built.observed())

    def update(self, resource, prior, ctx):
        return self.create(resource, prior, ctx)

    roll = recreate = update

    def delete(self, address, prior, ctx, keep_identity=False):
        """Images stay in the engine (another project may use them): `mlctl cache prune`."""

    def read(self, address, prior, ctx) -> ImageObserved | None:
        """The recorded image as the engine has it; None when it was removed (drift: apply rebuilds it)."""
        tag = getattr(prior.observed, "tag", None)
        if not tag:
            return None
        try:
            if prior.attributes.get("inference_config"):
                built = custom.find_custom(engine.client_of(ctx), tag, prior.attributes.get("spec_digest"))
            else:
                built = images.find_built(engine.client_of(ctx), tag)
        except engine.engine_errors() as e:
            raise engine.failure(f"reading {address}", e) from None
        if built is None:
            return None
        if prior.attributes.get("spec_digest"):
            images.record(ctx.data_dir, prior.attributes["spec_digest"], built)
        images.mark_used(built.image_id)
        return ImageObserved.from_json({**built.observed(), "on_chosen_base": self._on_chosen_base(built, prior, ctx)})

    @staticmethod
    def _on_chosen_base(built, prior, ctx) -> bool | None:
        """Is the image built on the base that would be chosen now? (None: cannot tell without building,
        as for a `build:` context, or without pulling, as for a base the engine lacks that plan assumes
        pullable: apply may fall back from it.) Nothing is pulled or built to answer."""
        request = images.ImageRequest.from_attributes(prior.attributes)
        if request.build_context or request.custom:
            return None
        try:
            chosen = baseimage.choose(
                engine.client_of(ctx), env_image=request.base_image, settings=ctx.settings, build=False
            )
        except MlctlError:  # the base chosen now has no python3: the build says so, not refresh
            return None
        if chosen.image_id is None:  # not in the engine, no registry asked (plan_asks_registry: false)
            return None
        return chosen.image_id == built.base_id
