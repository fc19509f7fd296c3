"""`mlctl cache list|prune` for images on a real engine: only mlctl's images are listed, pruned by the
virtualenv rules (not in this project's state, not used lately, no container made from it), and an image
mlctl did not build is never removed."""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import replace

import docker
import pytest

from mlctl.runtime.docker import baseimage as base
from mlctl.runtime.docker import imagecache, images, labels
from mlctl.runtime.kit.cache import Entry
from mlctl.state.statefile import ResourceState, State


def _unused_image(client):
    """An mlctl image no project uses (a server-only image under a spec digest of its own)."""
    request = replace(images.ImageRequest.server_only(), spec_digest=f"sha256:test-{uuid.uuid4().hex}")
    return images.ensure_image(client, request, {})


@pytest.fixture(scope="module")
def own_image(_engine_or_reason, mlctl_base):
    """An unused mlctl image shared by the tests that only read it; removed after the module."""
    client, reason = _engine_or_reason
    if client is None:
        pytest.skip(reason)
    built = _unused_image(client)
    yield built
    try:
        client.images.remove(built.tag, force=True)
    except docker.errors.ImageNotFound:
        pass


@pytest.fixture
def doomed_image(docker_engine, mlctl_base, scratch_images):
    """An unused mlctl image of this test's own (it removes it)."""
    built = _unused_image(docker_engine)
    scratch_images.append(built.tag)
    return built


@pytest.fixture
def foreign_image(docker_engine, mlctl_base, scratch_images):
    """An image mlctl did not build (no mlctl.managed label), built on mlctl's base."""
    tag = f"mlctl-test/foreign:{uuid.uuid4().hex[:12]}"
    dockerfile = f"FROM {base.base_tag()}\nLABEL owner=someone-else\n"
    docker_engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    scratch_images.append(tag)
    return docker_engine.images.get(tag)


def state_using(built) -> State:
    state = State()
    state.resources["image.env"] = ResourceState(
        kind="image", attributes={"spec_digest": built.spec_digest}, digest="sha256:x", observed=built.observed()
    )
    return state


def test_list_shows_only_mlctl_images_and_what_this_project_uses(docker_engine, own_image, foreign_image):
    entries = {e.path: e for e in imagecache.entries(docker_engine, State())}
    assert own_image.tag in entries and not entries[own_image.tag].in_use
    assert entries[own_image.tag].kind == "image" and "python 3.11" in entries[own_image.tag].detail
    assert not any(t in entries for t in foreign_image.tags)
    assert entries[base.base_tag()].kind == "base" and entries[base.base_tag()].in_use  # images are built on it
    used = {e.path: e for e in imagecache.entries(docker_engine, state_using(own_image))}
    assert used[own_image.tag].in_use


def test_prune_rules_are_the_virtualenv_rules(docker_engine, own_image):
    mine = [e for e in imagecache.entries(docker_engine, State()) if e.path == own_image.tag]
    now = time.time()
    assert imagecache.prunable(mine, older_than=0, now=now) == mine
    assert imagecache.prunable(mine, older_than=86400, now=now) == []  # built just now
    used = [e for e in imagecache.entries(docker_engine, state_using(own_image)) if e.path == own_image.tag]
    assert imagecache.prunable(used, older_than=0, now=now) == []  # this project's state names it


def test_remove_keeps_an_image_a_container_was_made_from(docker_engine, doomed_image):
    (entry,) = [e for e in imagecache.entries(docker_engine, State()) if e.path == doomed_image.tag]
    container = docker_engine.containers.create(doomed_image.tag, ["true"], labels=labels.managed("test"))
    try:
        assert imagecache.remove(docker_engine, entry) is False
        docker_engine.images.get(doomed_image.tag)
    finally:
        container.remove(force=True)
    assert imagecache.remove(docker_engine, entry) is True
    with pytest.raises(docker.errors.ImageNotFound):
        docker_engine.images.get(doomed_image.tag)


def test_remove_never_touches_an_image_mlctl_did_not_build(docker_engine, foreign_image):
    forged = Entry("image", foreign_image.tags[0], 0, False, 0.0, "not mlctl's")
    assert imagecache.remove(docker_engine, forged) is False
    assert docker_engine.images.get(foreign_image.tags[0]).id == foreign_image.id
    # built FROM mlctl's base, it inherited mlctl's labels; the tag mlctl gives its own tells it apart
    assert labels.is_managed(foreign_image.labels) and not imagecache.is_own(foreign_image)
