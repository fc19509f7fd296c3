"""Warm spare containers, the pure parts: which settings a spare must share with the instance that claims it, when
a deployment wants spares, and what a spare accepts as a claim (tests/docker/test_spare_docker.py runs them)."""

from __future__ import annotations

import dataclasses

import pytest

from mlctl.runtime.docker.spares import is_wanted, spare_key
from mlctl.runtime.host.spec import ServingSpec
from mlctl.runtime.server.spare import request_of


def spec(**launch) -> ServingSpec:
    return ServingSpec.from_dict(
        {
            "name": "blue",
            "digest": "sha256:b",
            "python": "/usr/bin/python3",
            "code_dir": "/s/code",
            "scoring_script": "score.py",
            "model_dir": "/s/model",
            "instance_count": 1,
            "launcher": "container",
            "launch": {"image": "mlctl/env:1", "memory_bytes": 2**30, **launch},
        }
    )


def test_a_spare_matches_an_instance_of_the_same_image_variables_uid_and_limits_only():
    base = spec()
    assert spare_key(base, 7) == spare_key(dataclasses.replace(base, digest="sha256:other"), 7)  # another version
    assert spare_key(base, 7) != spare_key(base, 8)
    assert spare_key(base, 7) != spare_key(spec(memory_bytes=2**31), 7)
    assert spare_key(base, 7) != spare_key(spec(image="mlctl/env:2"), 7)
    assert spare_key(base, 7) != spare_key(spec(read_only=False), 7)
    assert spare_key(base, 7) != spare_key(dataclasses.replace(base, environment_variables={"OMP_NUM_THREADS": "1"}), 7)


def test_spares_are_wanted_only_when_the_project_says_so():
    assert not is_wanted(spec())
    assert not is_wanted(spec(spare_container=False))
    assert is_wanted(spec(spare_container=True))


def test_a_claim_is_checked_for_its_types():
    argv, env, cwd, shadowed = request_of(
        {"argv": ["--x"], "env": {"A": "b"}, "cwd": "/c", "shadowed": ["utils", "mlctl"]}
    )
    assert (argv, env, cwd, shadowed) == (["--x"], {"A": "b"}, "/c", {"utils"})  # mlctl is never shadowed
    for bad in (
        {"argv": "x", "env": {}, "cwd": "/"},
        {"argv": [], "env": {"A": 1}, "cwd": "/"},
        {"argv": [], "env": {}},
    ):
        with pytest.raises(ValueError):
            request_of(bad)
