"""Environments reach the Ray nodes through the cluster (mlctl/runtime/ray/packages.py, nodeenv.py), on the three
machines whose nodes see no mlctl cache: the example's environment and one on a Python the nodes lack (3.9, shipped
with its interpreter) are shipped from the client machine and run on both nodes from Ray's package cache."""

from __future__ import annotations

import json
import os
import sys

import pytest
from prepare import EXAMPLE, OTHER_PYTHON_DIGEST

from mlctl.runtime.kit import virtualenvs

pytestmark = pytest.mark.ray

# the driver, on the client machine: ship the environment, then on each node an actor makes its virtualenv from
# Ray's packages and runs `CODE` with it
DRIVER = """
import json, os, subprocess, sys
import ray
import mlctl
from mlctl.runtime.ray import packages
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

address, digest, nodes, code, cache = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
ray.init(address, namespace="mlctl-tests-packages", log_to_driver=False,
         runtime_env={"py_modules": [os.path.dirname(mlctl.__file__)], "excludes": ["__pycache__"]})
ref = packages.ship("0123abcd", digest, "the test cluster's nodes")
again = packages.ship("0123abcd", digest, "the test cluster's nodes")

@ray.remote(num_cpus=0)
class Probe:
    def run(self, ref, code, cache):
        from mlctl.runtime.ray.nodeenv import materialize
        python, variables = materialize(ref)
        out = subprocess.run([python, "-c", code], env={**os.environ, **variables}, capture_output=True, text=True)
        return {"node": ray.util.get_node_ip_address(), "python": python, "code": out.returncode,
                "out": out.stdout, "err": out.stderr[-2000:], "cache": os.listdir(cache)}

runs = []
for node in nodes:
    strategy = NodeAffinitySchedulingStrategy(node, soft=False)
    mlctl_uri = ray.get_runtime_context().runtime_env["py_modules"]  # mlctl's own package, uploaded by ray.init
    env = {"py_modules": mlctl_uri + packages.py_modules(ref)}
    probe = Probe.options(scheduling_strategy=strategy, runtime_env=env).remote()
    runs.append(probe.run.remote(ref, code, cache))
print(json.dumps({"ref": ref, "same": ref == again, "runs": ray.get(runs, timeout=600)}))
"""
CODE = "import sys, aiohttp, {modules}; print(sys.version.split()[0]); print(sys.prefix)"


def shipped_and_run(machines, digest: str, modules: str, cache) -> dict:
    nodes = machines.alive_nodes()
    out = machines.client.run(
        [sys.executable, "-c", DRIVER, machines.address, digest, json.dumps(list(nodes.values()))]
        + [CODE.format(modules=modules), str(cache)],
        timeout=900,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    assert out.returncode == 0, out.stderr[-4000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(r["node"] for r in seen["runs"]) == sorted(nodes)  # ran on both nodes
    for run in seen["runs"]:
        assert run["code"] == 0, run["err"]
        assert run["cache"] == []  # the node's mlctl cache is an empty tmpfs: nothing came through a path
        assert str(cache) not in run["python"] and "runtime_resources" in run["python"]  # Ray's package cache
    assert seen["same"]  # shipping again names the same packages (found in the cluster, not uploaded again)
    return seen


def test_the_example_environment_runs_on_both_nodes_shipped_through_the_cluster(ray_machines, mlctl_cache, tmp_path):
    (digest,) = example_images(tmp_path)
    seen = shipped_and_run(ray_machines, digest, "numpy, sklearn", mlctl_cache)
    assert seen["ref"]["interpreter"] is None  # the nodes' own Python 3.11 runs it
    assert seen["ref"]["env"]["uri"].startswith("gcs://_ray_pkg_mlctl-0123abcd-env-")
    built = virtualenvs.read_built(digest)
    assert all(r["out"].split()[0] == built.python_version for r in seen["runs"])


def test_an_environment_on_a_python_the_nodes_lack_is_shipped_with_its_interpreter(ray_machines, mlctl_cache):
    built = virtualenvs.read_built(OTHER_PYTHON_DIGEST)
    assert built is not None, "tests/ray/prepare.py builds it (./dev test runs it first)"
    seen = shipped_and_run(ray_machines, OTHER_PYTHON_DIGEST, "joblib", mlctl_cache)
    assert seen["ref"]["interpreter"]["uri"].startswith("gcs://_ray_pkg_mlctl-0123abcd-python-")
    for run in seen["runs"]:
        version, prefix = run["out"].split()
        assert version == built.python_version and not version.startswith("3.11")
        assert prefix == os.path.dirname(os.path.dirname(run["python"]))  # the virtualenv made on the node


def example_images(tmp_path) -> list[str]:
    """The image digests of the diabetes example (built by tests/ray/prepare.py; found built here)."""
    import shutil

    from mlctl.projectpaths import Project
    from mlctl.reconciler.operations import load_valid_config
    from mlctl.resources import Kind

    copy = tmp_path / "diabetes"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".mlctl", "__pycache__"))
    (copy / "model").mkdir(exist_ok=True)
    (copy / "model" / "model.pkl").write_bytes(b"the image does not depend on the model")
    config = load_valid_config(Project.at(copy, runtime_override="local"))
    digests = [r.attributes["spec_digest"] for r in config.resources if r.kind is Kind.IMAGE]
    assert all(virtualenvs.read_built(d) for d in digests), "tests/ray/prepare.py builds them (./dev test runs it)"
    return digests
