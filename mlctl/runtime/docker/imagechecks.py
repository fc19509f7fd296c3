"""What plan can say of the docker runtime's images before anything is pulled or built: the tag each
image will have and which base it will start from and why (notes the plan shows), and a base whose Python
does not satisfy the environment's python request (errors with the environment's file and line, for preflight).

Nothing here changes the engine: images are not pulled (a registry is asked whether it has one),
mlctl's own base is not built (its Python is the recipe's), `build:` contexts are not built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from mlctl.errors import Diagnostic
from mlctl.resources import Kind
from mlctl.runtime.docker import baseimage as bases
from mlctl.runtime.docker.images import ImageRequest, content_digest, image_tag


def _where(resource) -> dict:
    src = resource.source
    return {"file": src.file if src else None, "line": src.line if src else None, "address": str(resource.address)}


def image_bases(
    client, resources: Iterable, settings: Mapping[str, Any] | None
) -> list[tuple[Any, str | None, Diagnostic | None]]:
    """[(image resource, the base's description or None, the Python problem or None)] of every desired image."""
    out = []
    for r in resources:
        if r.kind is not Kind.IMAGE:
            continue
        request = ImageRequest.from_attributes(r.attributes)
        if request.custom:
            where = request.build_context or request.base_image
            out.append((r, f"a custom container: {where} used as it is (inference_config), no packages added", None))
            continue
        if request.build_context:
            out.append(
                (
                    r,
                    f"base image built from the environment's build context {request.build_context} "
                    f"({request.dockerfile_path or 'Dockerfile'}) at apply",
                    None,
                )
            )
            continue
        chosen = bases.choose(client, env_image=request.base_image, settings=settings, build=False)
        problem = bases.python_problem(chosen, request.python, request.environment)
        tag = image_tag(content_digest(request.spec_digest, chosen.image_id)) if chosen.image_id else None
        out.append(
            (
                r,
                f"{tag or 'tag known after apply'} on {chosen.describe()}",
                Diagnostic(problem, bases.PYTHON_HINT, **_where(r)) if problem else None,
            )
        )
    return out


def python_problems(client, resources: Iterable, settings: Mapping[str, Any] | None) -> list[Diagnostic]:
    """Errors for the images whose base's Python does not fit the environment, and for mlctl's own base when an
    image needs it and this machine cannot build it (preflight raises them, before anything is created)."""
    resources = list(resources)
    problems = [problem for _, _, problem in image_bases(client, resources, settings) if problem]
    if _needs_own_base(client, resources, settings):
        missing = bases.build_problem()
        if missing:
            needed_by = sorted(str(r.address) for r in resources if r.kind in (Kind.IMAGE, Kind.DEPLOYMENT))
            problems.append(dataclasses.replace(missing, address=", ".join(needed_by[:3]) or None))
    return problems


def _needs_own_base(client, resources: list, settings: Mapping[str, Any] | None) -> bool:
    """Will apply build mlctl's own base: an image (or a deployment without an environment, which runs on the
    scoring server's image) whose base is mlctl's and is not in the engine yet? Nothing is pulled."""
    requests = [ImageRequest.from_attributes(r.attributes) for r in resources if r.kind is Kind.IMAGE]
    if any(r.kind is Kind.DEPLOYMENT and not r.attributes.get("image_digest") for r in resources):
        requests.append(ImageRequest.server_only())
    for request in requests:
        if request.build_context:
            continue
        chosen = bases.choose(client, env_image=request.base_image, settings=settings, build=False)
        if chosen.source == "mlctl" and chosen.image_id is None:
            return True
    return False


def base_notes(client, resources: Iterable, settings: Mapping[str, Any] | None) -> list[Diagnostic]:
    """One note per image: its tag (when the base is in the engine already) and which base it is built on
    and why (plan shows them)."""
    return [
        Diagnostic(f"{r.address}: {described}", severity="note", address=str(r.address))
        for r, described, _ in image_bases(client, resources, settings)
        if described
    ]
