"""Images of the docker runtime on a real engine: the base chosen and reused (and why), an environment's
image built from packages installed on the host and importable in a container, one image shared by two
projects, a Python that does not fit, `environment.build` contexts, no engine."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from image_support import EngineProxy, example_copy

from mlctl.errors import MlctlError
from mlctl.projectpaths import Project
from mlctl.resources import Kind
from mlctl.runtime.contract import DriverError
from mlctl.runtime.docker.runcontext import DockerContext
from mlctl.runtime.docker import baseimage as base
from mlctl.runtime.docker import contexts, engine, imagechecks, images, labels, steps
from mlctl.runtime.docker.imagedriver import ImageDriver
from mlctl.schemas.load import load_config
from mlctl.state.statefile import ResourceState


def run_in(client, tag: str, code: str) -> str:
    return client.containers.run(tag, ["python3", "-c", code], remove=True, network_disabled=True).decode()


def test_mlctl_base_is_built_once_and_reused_with_its_reason(docker_engine, mlctl_base):
    said = []
    again = base.choose(docker_engine, env_image=None, settings={}, say=said.append)
    assert again.image_id == mlctl_base.image_id and again.source == "mlctl"
    assert not any("debootstrap" in m for m in said), "a base the engine has is not built again"
    assert "mlctl's own Debian base" in again.reason and "neither the environment nor mlctl.yaml" in again.reason
    assert again.python_version.startswith("3.11") and again.python == "/usr/bin/python3"
    image = docker_engine.images.get(again.image_id)
    assert labels.is_managed(image.labels, "base") and labels.value(image.labels, "recipe") == base.recipe_digest()
    assert base.base_tag() in image.tags


def test_base_order_environment_image_then_project_then_mlctl(docker_engine, mlctl_base):
    unpullable = f"mlctl-test/not-anywhere-{uuid.uuid4().hex[:8]}:1"
    chosen = base.choose(docker_engine, env_image=unpullable, settings={"base_image": base.base_tag()})
    assert chosen.source == "project" and chosen.image_id == mlctl_base.image_id
    assert "docker: base_image" in chosen.reason
    chosen = base.choose(docker_engine, env_image=base.base_tag(), settings={"base_image": unpullable})
    assert chosen.source == "environment" and "environment's image" in chosen.reason
    chosen = base.choose(docker_engine, env_image=unpullable, settings={})
    assert chosen.source == "mlctl" and f"passed over the environment's image {unpullable}" in chosen.reason


def test_example_environment_image_imports_sklearn_and_the_server_packages(docker_engine, example_image):
    assert example_image.tag == images.image_tag(example_image.content_digest)
    names = {line.split("==")[0].lower().replace("_", "-") for line in example_image.frozen}
    assert {"scikit-learn", "aiohttp", "uvloop", "orjson"} <= names
    out = run_in(
        docker_engine,
        example_image.tag,
        "import sklearn, aiohttp, uvloop, orjson, sys; print(sklearn.__version__, sys.executable)",
    )
    assert out.startswith("1.9.") and example_image.python in out


def test_server_image_holds_the_scoring_servers_packages(docker_engine, server_image):
    assert server_image.spec_digest is None
    assert (
        run_in(docker_engine, server_image.tag, "import aiohttp, os; print(os.environ['PYTHONPATH'])").strip()
        == images.SITE
    )


def _project_copy(tmp_path, name):
    return Project.at(example_copy(tmp_path / name))


def test_two_projects_share_one_image_built_once(docker_engine, example_image, tmp_path):
    """Two projects with the example's environment: the same tag, and the second finds it built (no
    install, no engine build), recorded for each project's deployments."""
    observed, said = [], []
    for name in ("one", "two"):
        project = _project_copy(tmp_path, name)
        (resource,) = [r for r in load_config(project).resources if r.kind is Kind.IMAGE]
        ctx = DockerContext(project, progress=lambda address, message: said.append(message))
        observed.append(ImageDriver().create(resource, None, ctx))
        recorded = images.recorded(project.data_dir, resource.attributes["spec_digest"])
        assert recorded.tag == example_image.tag
        assert (
            images.deployment_image(docker_engine, project.data_dir, resource.attributes["spec_digest"], {}).tag
            == example_image.tag
        )
    assert observed[0].tag == observed[1].tag == example_image.tag
    assert observed[0].image_id == example_image.image_id and observed[0].base_reason
    assert not any(m.startswith(("installing", "building image")) for m in said), said


def test_image_removed_outside_mlctl_reads_as_gone(docker_engine, mlctl_base, scratch_images, tmp_path):
    request = replace(images.ImageRequest.server_only(), spec_digest=f"sha256:test-{uuid.uuid4().hex}")
    built = images.ensure_image(docker_engine, request, {})
    scratch_images.append(built.tag)
    project = Project.at(tmp_path)
    prior = ResourceState(
        kind="image", attributes={"spec_digest": request.spec_digest}, digest="sha256:x", observed=built.observed()
    )
    driver, ctx = ImageDriver(), DockerContext(project)
    address = "image.x"
    assert driver.read(address, prior, ctx).tag == built.tag
    docker_engine.images.remove(built.tag)
    assert driver.read(address, prior, ctx) is None


def test_image_on_another_base_than_the_one_chosen_now_is_drift(docker_engine, server_image, scratch_images, tmp_path):
    """mlctl.yaml's docker.base_image changed after the image was built: refresh reports it (the plan
    rebuilds the image on the new base and rolls its deployments)."""
    other = f"mlctl-test/other-base:{uuid.uuid4().hex[:12]}"
    docker_engine.images.build(
        fileobj=io.BytesIO(f"FROM {base.base_tag()}\nLABEL other=1\n".encode()), tag=other, rm=True
    )
    scratch_images.append(other)
    prior = ResourceState(
        kind="image", attributes={"spec_digest": None}, digest="sha256:x", observed=server_image.observed()
    )
    read = lambda settings: ImageDriver().read("image.x", prior, DockerContext(Project.at(tmp_path), settings))  # noqa: E731
    assert read({}).on_chosen_base is True
    assert read({"base_image": other}).on_chosen_base is False
    # a base the engine lacks, no registry asked: cannot tell without pulling (apply may have fallen back from it)
    missing = f"mlctl-test/not-anywhere-{uuid.uuid4().hex[:8]}:1"
    assert read({"base_image": missing}).on_chosen_base is None
    assert read({"base_image": missing, "plan_asks_registry": True}).on_chosen_base is True
    from mlctl.reconciler.rules import DRIFT

    assert [rule.drifted(read({"base_image": other}), {}) for rule in DRIFT[Kind.IMAGE]] == [True]


def test_python_mismatch_names_both(docker_engine, mlctl_base, example_request):
    with pytest.raises(DriverError) as e:
        images.ensure_image(docker_engine, replace(example_request, python="3.12"), {})
    assert f"has Python {mlctl_base.python_version}" in e.value.summary
    assert "asks for python 3.12" in e.value.summary and base.base_tag() in e.value.summary
    assert "base_image" in e.value.detail


# ---- environment.build -------------------------------------------------------------------------


def _context(tmp_path, dockerfile: str, name="Dockerfile"):
    folder = tmp_path / "ctx"
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(dockerfile)
    (folder / "hello.txt").write_text(f"hello {uuid.uuid4().hex}\n")
    return folder


def test_environment_build_context_is_built_as_given(docker_engine, mlctl_base, scratch_images, tmp_path):
    folder = _context(tmp_path, f"FROM {base.base_tag()}\nCOPY hello.txt /hello.txt\n", "docker/Custom")
    request = images.ImageRequest(
        environment="custom",
        spec_digest=f"sha256:test-{uuid.uuid4().hex}",
        build_context=str(folder),
        dockerfile_path="docker/Custom",
    )
    built = images.ensure_image(docker_engine, request, {})
    scratch_images += [built.tag, contexts.context_tag(request.spec_digest)]
    assert built.base == contexts.context_tag(request.spec_digest)
    assert "built from the environment's build context" in built.base_reason
    out = run_in(docker_engine, built.tag, "import aiohttp; print(open('/hello.txt').read())")
    assert out.strip() == (folder / "hello.txt").read_text().strip()
    log = images.build_log(built.content_digest).read_text()
    assert "COPY hello.txt /hello.txt" in log and "COPY site /opt/mlctl/site" in log


def test_environment_build_failing_dockerfile_is_a_clear_error(docker_engine, mlctl_base, scratch_images, tmp_path):
    folder = _context(tmp_path, f"FROM {base.base_tag()}\nRUN echo step-output-before-failing && exit 3\n")
    request = images.ImageRequest(
        environment="broken",
        spec_digest=f"sha256:test-{uuid.uuid4().hex}",
        build_context=str(folder),
        dockerfile_path="Dockerfile",
    )
    with pytest.raises(DriverError) as e:
        images.ensure_image(docker_engine, request, {})
    assert str(folder / "Dockerfile") in e.value.summary and "failed" in e.value.summary
    assert "step-output-before-failing" in e.value.log_tail and "dockerfile_path" in e.value.detail
    with pytest.raises(docker_errors().ImageNotFound):
        docker_engine.images.get(contexts.context_tag(request.spec_digest))


def docker_errors():
    import docker

    return docker.errors


def _validate(root):
    return subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(root), "validate"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


ENV_YML = """$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: custom
build:
  path: {path}
{extra}"""


@pytest.mark.parametrize("case", ["missing_path", "no_dockerfile", "named_dockerfile_missing"])
def test_environment_build_bad_input_names_file_and_field(tmp_path, case):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "ctx").mkdir()
    path, extra, field, words = {
        "missing_path": ("nowhere", "", "build.path", "folder not found: nowhere"),
        "no_dockerfile": ("ctx", "", "build.path", "the build context ctx has no Dockerfile"),
        "named_dockerfile_missing": (
            "ctx",
            "  dockerfile_path: build/Dockerfile.gpu\n",
            "build.dockerfile_path",
            "has no build/Dockerfile.gpu",
        ),
    }[case]
    (root / "env.yml").write_text(ENV_YML.format(path=path, extra=extra))
    out = _validate(root)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert words in out.stderr and "env.yml:" in out.stderr and f"field '{field}'" in out.stderr, out.stderr


def test_environment_build_changes_the_spec_digest_with_its_files(tmp_path):
    root = tmp_path / "proj"
    _context(root, "FROM scratch\n")
    (root / "env.yml").write_text(ENV_YML.format(path="ctx", extra=""))
    first = {r.address: r for r in load_config(Project.at(root)).resources}
    (root / "ctx" / "hello.txt").write_text("changed\n")
    second = {r.address: r for r in load_config(Project.at(root)).resources}
    image = [a for a in first if a.kind is Kind.IMAGE][0]
    assert first[image].attributes["spec_digest"] != second[image].attributes["spec_digest"]
    assert first[image].attributes["build_context"] == str(root / "ctx")


# ---- the engine --------------------------------------------------------------------------------


def test_no_engine_is_one_clear_error(tmp_path, monkeypatch):
    dead = tmp_path / "dead.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    with pytest.raises(MlctlError) as e:
        engine.connect({})
    (d,) = e.value.diagnostics
    assert f"no Docker engine answers at unix://{dead} (from DOCKER_HOST)" == d.summary
    assert "dockerd" in d.detail and "apt-get install docker.io" in d.detail


# ---- what plan says before anything is built ----------------------------------------------------


def _example_resources(tmp_path, **image_attributes):
    config = load_config(Project.at(example_copy(tmp_path / "diabetes")))
    return [
        replace(r, attributes={**r.attributes, **image_attributes}) if r.kind is Kind.IMAGE else r
        for r in config.resources
    ]


def _image(resources):
    (image,) = [r for r in resources if r.kind is Kind.IMAGE]
    return image


def test_plan_notes_say_which_base_and_why_without_pulling_or_building(docker_engine, mlctl_base, tmp_path):
    unpullable = f"mlctl-test/not-anywhere-{uuid.uuid4().hex[:8]}:1"
    resources = _example_resources(tmp_path, base_image=unpullable)
    (note,) = imagechecks.base_notes(docker_engine, resources, {})  # no registry asked: assumed pullable
    assert note.severity == "note" and note.summary.startswith("image.diabetes-blue-env: tag known after apply")
    assert f"on base image {unpullable} (the environment's image (not in the engine: pulled at apply))" in note.summary
    asks = {"plan_asks_registry": True}
    (note,) = imagechecks.base_notes(docker_engine, resources, asks)
    assert note.severity == "note" and note.summary.startswith("image.diabetes-blue-env: mlctl/env:")
    digest = images.content_digest(_image(resources).attributes["spec_digest"], mlctl_base.image_id)
    assert f"{images.image_tag(digest)} on base image {base.base_tag()}" in note.summary
    assert f"passed over the environment's image {unpullable}" in note.summary
    (note,) = imagechecks.base_notes(docker_engine, resources, {**asks, "base_image": base.base_tag()})
    assert "docker: base_image in mlctl.yaml" in note.summary
    with pytest.raises(docker_errors().ImageNotFound):
        docker_engine.images.get(unpullable)


def test_preflight_python_problem_names_both_with_the_environments_file(docker_engine, mlctl_base, tmp_path):
    (problem,) = imagechecks.python_problems(docker_engine, _example_resources(tmp_path, python="3.12"), {})
    assert f"has Python {mlctl_base.python_version}" in problem.summary and "asks for python 3.12" in problem.summary
    assert problem.file and problem.file.endswith("blue-deployment.yml") and problem.line
    assert imagechecks.python_problems(docker_engine, _example_resources(tmp_path / "ok", python="3.11"), {}) == []


def test_a_build_under_way_is_waited_for_and_reused(docker_engine, mlctl_base, scratch_images):
    """Two mlctl building one image: the second waits on the machine-wide lock and reuses the image
    the first built (the test plays the first: it holds the lock and builds)."""
    import threading

    request = replace(images.ImageRequest.server_only(), spec_digest=f"sha256:test-{uuid.uuid4().hex}")
    digest = images.content_digest(request.spec_digest, mlctl_base.image_id)
    said, result, waiting = [], {}, threading.Event()

    def say(message):
        said.append(message)
        if message.startswith("waiting for another mlctl"):
            waiting.set()

    with steps.machine_lock(f"image-{images.key_of(digest)}"):
        second = threading.Thread(
            target=lambda: result.update(built=images.ensure_image(docker_engine, request, {}, say))
        )
        second.start()
        assert waiting.wait(120), said
        first = images._build(docker_engine, request, mlctl_base, digest, lambda m: None)
        scratch_images.append(first.tag)
    second.join(300)
    assert result["built"].image_id == first.image_id
    assert not any(m.startswith(("installing", "building image")) for m in said), said


def test_engine_going_away_mid_build_is_a_clear_error(docker_engine, mlctl_base, tmp_path, monkeypatch):
    """The engine stops answering while an image builds: a DriverError saying so and how to start one
    (apply records the image as failed; the next apply builds it)."""
    real = engine.address()
    if not real.startswith("unix://"):
        pytest.skip("the proxy stands in front of a unix socket engine")
    proxy = EngineProxy(tmp_path, real.removeprefix("unix://"))
    monkeypatch.setenv("DOCKER_HOST", proxy.address)
    client = engine.connect({})
    request = replace(images.ImageRequest.server_only(), spec_digest=f"sha256:test-{uuid.uuid4().hex}")

    def say(message):
        if message.startswith("Step 2/"):
            proxy.cut()

    dangling_before = {i.id for i in docker_engine.images.list(filters={"dangling": True})}
    try:
        with pytest.raises(DriverError) as e:
            images.ensure_image(client, request, {}, say)
        assert "the Docker engine at" in e.value.summary and "stopped answering" in e.value.summary
        assert "dockerd" in e.value.detail
    finally:
        proxy.cut()
        digest = images.content_digest(request.spec_digest, mlctl_base.image_id)
        try:  # the engine may have finished the build on its own
            docker_engine.images.remove(images.image_tag(digest), force=True)
        except docker_errors().ImageNotFound:
            pass
        # the cancelled build's last step stays as an untagged image of mlctl's lineage: removed (never forced)
        for image in docker_engine.images.list(filters={"dangling": True, "label": "mlctl.managed=1"}):
            if image.id not in dangling_before:
                try:
                    docker_engine.images.remove(image.id, force=False)
                except docker_errors().APIError:
                    pass


def _interfaces_of_build(docker_engine, scratch_images, tmp_path, settings) -> list[str]:
    unique = uuid.uuid4().hex  # (no layer of another build reused)
    folder = _context(tmp_path, f"FROM {base.base_tag()}\nRUN echo {unique} && ls /sys/class/net > /interfaces.txt\n")
    request = images.ImageRequest(
        environment="net",
        spec_digest=f"sha256:test-{uuid.uuid4().hex}",
        build_context=str(folder),
        dockerfile_path="Dockerfile",
    )
    built = images.ensure_image(docker_engine, request, settings)
    scratch_images += [built.tag, contexts.context_tag(request.spec_digest)]
    return run_in(docker_engine, built.tag, "print(open('/interfaces.txt').read())").split()


def test_environment_build_runs_with_no_network_unless_the_project_names_one(
    docker_engine, mlctl_base, scratch_images, tmp_path
):
    assert _interfaces_of_build(docker_engine, scratch_images, tmp_path / "a", {}) == ["lo"]
    named = _interfaces_of_build(docker_engine, scratch_images, tmp_path / "b", {"build_network": "default"})
    assert "lo" in named and len(named) > 1  # the engine's default network: an interface beside lo


def _tiny_sdist_request(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
    from test_source_builds import make_sdist

    mark = tmp_path / "host-mark"
    sdist = make_sdist(tmp_path / "pkg", mark)
    request = images.ImageRequest(
        environment="tiny", spec_digest=f"sha256:test-{uuid.uuid4().hex}", pip_packages=(f"tinypkg @ file://{sdist}",)
    )
    return request, mark


def test_a_package_without_a_wheel_is_refused_by_name(docker_engine, mlctl_base, tmp_path):
    request, mark = _tiny_sdist_request(tmp_path)
    with pytest.raises(DriverError) as e:
        images.ensure_image(docker_engine, request, {})
    assert "tinypkg has no wheel" in e.value.summary and "docker: {source_builds: true}" in e.value.summary
    assert not mark.exists()  # its setup.py never ran


def test_an_allowed_source_build_runs_in_a_container_with_no_network(
    docker_engine, mlctl_base, scratch_images, tmp_path
):
    request, mark = _tiny_sdist_request(tmp_path)
    built = images.ensure_image(docker_engine, request, {"source_builds": True})
    scratch_images.append(built.tag)
    seen = ast.literal_eval(run_in(docker_engine, built.tag, "import tinypkg; print(repr(tinypkg.SEEN))"))
    assert seen["network"] != "reached" and seen["network"].endswith("Error")
    assert seen["uid"] == os.getuid()  # the host's user in the container (all capabilities dropped)
    assert seen["secret"] == "FileNotFoundError" and not mark.exists()  # nothing of the host's but its inputs
    assert any(p.startswith("tinypkg==0.1") for p in built_frozen(docker_engine, built.tag))


def test_a_package_only_on_the_index_as_an_sdist_is_fetched_and_built_in_the_container(
    docker_engine, mlctl_base, scratch_images
):
    request = images.ImageRequest(
        environment="tiny", spec_digest=f"sha256:test-{uuid.uuid4().hex}", pip_packages=("termcolor==1.1.0",)
    )
    built = images.ensure_image(docker_engine, request, {"source_builds": True})
    scratch_images.append(built.tag)
    colored = run_in(docker_engine, built.tag, "import termcolor; print(termcolor.colored('x', 'red') != 'x')")
    assert colored.strip() == "True"
    assert any(p.startswith("termcolor==1.1.0") for p in built_frozen(docker_engine, built.tag))


def built_frozen(client, tag: str) -> list[str]:
    return json.loads(labels.value(client.images.get(tag).labels, "frozen") or "[]")
