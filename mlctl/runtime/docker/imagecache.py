"""The docker runtime's share of `mlctl cache list|prune`: the images mlctl built in the engine
(environment images, `environment.build` context images, mlctl's own base), listed and pruned by the
rules used for virtualenvs.

Only images labelled `mlctl.managed=1` are ever listed or removed. An image is pruned only when this
project's state does not use it, no project used it (applied or refreshed) within `older_than`
seconds, no container (running or stopped) was made from it, and, for a base or a context image, no
mlctl image is built on it. Removal never forces: an image the engine still needs stays.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from mlctl.runtime.docker import baseimage as bases
from mlctl.runtime.docker import contexts, images, labels
from mlctl.runtime.kit.cache import Entry

KINDS = ("image", "context", "base")  # label kinds of the images mlctl builds


def _last_used(image) -> float:
    marker = images.used_marker(image.id)
    if marker.exists():
        return marker.stat().st_mtime
    built = labels.value(image.labels, "built-at")
    return float(built) if built else 0.0


def state_images(state) -> set[str]:
    """Pure: the image ids and tags this state's image resources name."""
    out = set()
    for rs in state.resources.values():
        if rs.kind == "image" and rs.observed is not None:
            out.update(v for v in (getattr(rs.observed, "tag", None), getattr(rs.observed, "image_id", None)) if v)
    return out


def _detail(image) -> str:
    kind = labels.value(image.labels, "kind")
    if kind == "base":
        return "mlctl's base image (debootstrap)"
    if kind == "context":
        return "an environment's build context"
    frozen = labels.value(image.labels, "frozen") or "[]"
    return (
        f"python {labels.value(image.labels, 'python-version')}, {frozen.count(',') + (frozen != '[]')} packages, "
        f"base {labels.value(image.labels, 'base')}"
    )


def own_tag(image_labels) -> str | None:
    """Pure: the tag mlctl gave the image these labels describe (None when they describe none). Labels
    are inherited by images built FROM an mlctl image; the tag is not, so an image is mlctl's only when
    it carries this tag."""
    kind = labels.value(image_labels, "kind")
    try:
        if kind == "base":
            return bases.base_tag(labels.value(image_labels, "recipe"))
        if kind == "image":
            return images.image_tag(labels.value(image_labels, "content-digest"))
        if kind == "context":
            return contexts.context_tag(labels.value(image_labels, "spec-digest"))
    except (AttributeError, IndexError):  # a label missing: not one of mlctl's
        return None
    return None


def is_own(image) -> bool:
    """Is this an image mlctl built (labelled as one, and carrying the tag mlctl gave it)?"""
    return labels.is_managed(image.labels) and own_tag(image.labels) in (image.tags or [])


def entries(client, state) -> list[Entry]:
    """Every image mlctl built in the engine, and whether this project's state (or another mlctl image
    built on it) uses it."""
    found = {img.id: img for kind in KINDS for img in client.images.list(filters=labels.selector(kind)) if is_own(img)}
    named = state_images(state)
    bases = {labels.value(img.labels, "base-id") for img in found.values()}
    out = []
    for image_id, img in sorted(found.items(), key=lambda kv: (labels.value(kv[1].labels, "kind"), kv[0])):
        tag = own_tag(img.labels)
        in_use = bool(named & {image_id, *img.tags}) or image_id in bases
        out.append(
            Entry(
                labels.value(img.labels, "kind"),
                tag,
                int(img.attrs.get("Size") or 0),
                in_use,
                _last_used(img),
                _detail(img),
            )
        )
    return out


def prunable(items: Iterable[Entry], older_than: float, now: float | None = None) -> list[Entry]:
    """Pure: the image entries prune removes: unused here and unused by anyone for `older_than` s."""
    now = time.time() if now is None else now
    return [e for e in items if e.kind in KINDS and not e.in_use and now - e.last_used >= older_than]


def remove(client, entry: Entry) -> bool:
    """Remove one mlctl image; False when it is busy (a container was made from it, another image
    needs it) or is no longer one of mlctl's."""
    import docker

    try:
        image = client.images.get(entry.path)
    except docker.errors.ImageNotFound:
        return True
    if not is_own(image) or labels.value(image.labels, "kind") not in KINDS:
        return False
    if client.containers.list(all=True, filters={"ancestor": image.id}):
        return False
    try:
        client.images.remove(image.id, force=False)
    except docker.errors.APIError:  # in use (a container, a child image): kept
        return False
    images.used_marker(image.id).unlink(missing_ok=True)
    return True
