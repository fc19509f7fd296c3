"""Rollouts on the docker runtime (issue 14): blue to green under continuous load with no failed request,
a green whose init() raises leaves blue serving with the traceback shown, and a project moved from the
local runtime to docker is planned as a replacement and then answers on the same URL path from containers."""

import json

from docker_support import containers_of, docker_split, engine_api  # noqa: F401
from e2e_support import Endpoint, alive, blue_to_green_under_load, keys, mlctl


def test_blue_to_green_under_load_fails_no_request(docker_split, engine_api):
    root = docker_split.root
    load = blue_to_green_under_load(docker_split, "dsplit")
    assert load.failures == [], load.failures[:5]
    assert load.served["blue"] > 0 and load.served["green"] > 0
    running = containers_of(engine_api, root, every=True)
    assert [c["Labels"]["mlctl.deployment"] for c in running] == ["green"]  # blue's container is gone


def test_green_whose_init_raises_leaves_blue_serving(docker_split, engine_api):
    p, root = docker_split, docker_split.root
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    p.write({"blue": 90, "green": 10}, {"blue": {}, "green": {"fail": True}})
    out = mlctl(root, "apply", "--auto-approve", check=False)
    assert out.returncode == 1 and "RuntimeError: init failed on purpose in green" in out.stderr
    assert "Traceback" in out.stderr
    key = keys(root, "dsplit")["primaryKey"]
    ep = Endpoint(root, "dsplit")
    assert {json.loads(ep.score(key=key)[1])["who"] for _ in range(20)} == {"blue"}
    ep.close()
    assert json.loads(mlctl(root, "show", "dsplit", "--json").stdout)["traffic"] == {"blue": 100}
    assert [c["Labels"]["mlctl.deployment"] for c in containers_of(engine_api, root)] == ["blue"]


def test_local_to_docker_is_a_replacement_on_the_same_url(docker_split, engine_api):
    p, root = docker_split, docker_split.root
    (root / "mlctl.yaml").write_text("runtime: local\n")
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    before = json.loads(mlctl(root, "show", "dsplit", "--json").stdout)
    local_pid = before["deployments"]["blue"]["instances"][0]["pid"]
    assert containers_of(engine_api, root) == []

    (root / "mlctl.yaml").write_text("runtime: docker\n")
    plan = mlctl(root, "plan")
    assert "runtime changed" in plan.stdout and "deployment.dsplit.blue" in plan.stdout
    assert "-/+" in plan.stdout or "+/-" in plan.stdout
    mlctl(root, "apply", "--auto-approve", "--allow-destroy")
    after = json.loads(mlctl(root, "show", "dsplit", "--json").stdout)
    assert after["runtime"] == "docker" and after["scoring_uri"] == before["scoring_uri"]
    (inst,) = after["deployments"]["blue"]["instances"]
    (box,) = containers_of(engine_api, root, every=False)
    assert inst["container"] == box["Id"][:12] and not alive(local_pid)
    ep = Endpoint(root, "dsplit")
    assert json.loads(ep.score(key=keys(root, "dsplit")["primaryKey"])[1]) == {"who": "blue"}
    ep.close()
    assert mlctl(root, "plan", "--detailed-exitcode", check=False).returncode == 0
