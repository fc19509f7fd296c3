"""Environments reach the Ray nodes through the cluster (mlctl/runtime/ray/packages.py, nodeenv.py), on the three
machines whose nodes see no mlctl cache: the example's environment and one on a Python the nodes lack (3.9, shipped
with its interpreter) are shipped from the client machine and run on both nodes from Ray's package cache (one
driver and one actor per node for both: the ray tests' time is short)."""

from __future__ import annotations

import json
import os
import sys

import pytest
from prepare import EXAMPLE, OTHER_PYTHON_DIGEST

from mlctl.runtime.kit import virtualenvs

pytestmark = pytest.mark.ray

# the driver, on the client machine: ship each environment, then on each node one actor makes each environment's
# virtualenv from Ray's packages and runs its code with it
DRIVER = """
import json, os, subprocess, sys
import ray
import mlctl
from mlctl.runtime.ray import packages
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

address, nodes, cache, envs = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
tests_folder = sys.argv[5]
ray.init(address, namespace="mlctl-tests-packages", log_to_driver=False,
         runtime_env={"py_modules": [os.path.dirname(mlctl.__file__)], "excludes": ["__pycache__"]})
refs = [packages.ship("0123abcd", digest, "the test cluster's nodes") for digest, _ in envs]
again = [packages.ship("0123abcd", digest, "the test cluster's nodes") for digest, _ in envs]

@ray.remote(num_cpus=0)
class Probe:
    def run(self, refs, codes, cache, tests_folder):
        from mlctl.runtime.ray.nodeenv import materialize
        runs = []
        for ref, code in zip(refs, codes):
            python, variables = materialize(ref)
            out = subprocess.run([python, "-c", code], env={**os.environ, **variables}, capture_output=True, text=True)
            runs.append({"python": python, "code": out.returncode, "out": out.stdout, "err": out.stderr[-2000:]})
        return {"node": ray.util.get_node_ip_address(), "runs": runs, "cache": os.listdir(cache),
                "tests_folder": os.path.exists(tests_folder)}

mlctl_uri = ray.get_runtime_context().runtime_env["py_modules"]  # mlctl's own package, uploaded by ray.init
env = {"py_modules": mlctl_uri + [uri for ref in refs for uri in packages.py_modules(ref)]}
probes = [
    Probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False), runtime_env=env).remote()
    for n in nodes
]
seen = ray.get([p.run.remote(refs, [code for _, code in envs], cache, tests_folder) for p in probes], timeout=600)
print(json.dumps({"refs": refs, "same": refs == again, "nodes": seen}))
"""
CODE = "import sys, aiohttp, {modules}; print(sys.version.split()[0]); print(sys.prefix)"


def test_environments_reach_both_nodes_through_the_cluster_with_a_python_the_nodes_lack(
    ray_machines, mlctl_cache, tmp_path
):
    """The example's environment (on the nodes' own Python) and one on Python 3.9 (else 3.10: shipped with its
    interpreter), shipped from the client machine, run on both nodes from Ray's package cache."""
    (example,) = example_images(tmp_path)
    other = virtualenvs.read_built(OTHER_PYTHON_DIGEST)
    if other is None:  # tests/ray/prepare.py builds it (./dev test runs it first) when there is a Python 3.9 or 3.10
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "no environment on Python 3.9/3.10: tests/ray/prepare.py"
        )
    envs = [(example, CODE.format(modules="numpy, sklearn")), (OTHER_PYTHON_DIGEST, CODE.format(modules="joblib"))]
    nodes = ray_machines.alive_nodes()
    out = ray_machines.client.run(
        [sys.executable, "-c", DRIVER, ray_machines.address, json.dumps(list(nodes.values())), str(mlctl_cache)]
        + [json.dumps(envs), str(tmp_path)],
        timeout=900,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    assert out.returncode == 0, out.stderr[-4000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["same"]  # shipping again names the same packages (found in the cluster, not uploaded again)
    example_ref, other_ref = seen["refs"]
    assert example_ref["interpreter"] is None  # the nodes' own Python runs it
    assert example_ref["env"]["uri"].startswith("gcs://_ray_pkg_mlctl-0123abcd-env-")
    assert other_ref["interpreter"]["uri"].startswith("gcs://_ray_pkg_mlctl-0123abcd-python-")
    assert sorted(n["node"] for n in seen["nodes"]) == sorted(nodes)  # ran on both nodes, each at its own address
    versions = [virtualenvs.read_built(example).python_version, other.python_version]
    for node in seen["nodes"]:
        assert node["cache"] == []  # the node's mlctl cache is an empty tmpfs: nothing came through a path
        assert node["tests_folder"] is False  # nor the test's folder (the tests' temporary root is covered too)
        for run, version in zip(node["runs"], versions):
            assert run["code"] == 0, run["err"]
            assert str(mlctl_cache) not in run["python"] and "runtime_resources" in run["python"]  # Ray's cache
            ran, prefix = run["out"].split()
            assert ran == version and prefix == os.path.dirname(os.path.dirname(run["python"]))  # the node's venv
    assert not other.python_version.startswith(versions[0].rsplit(".", 1)[0] + ".")  # really another Python


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
