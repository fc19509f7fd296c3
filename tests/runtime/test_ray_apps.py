"""The ray runtime's pure parts, without a cluster: application names and ownership, Serve's details read,
the replicas' options, the replicas a scale-down stops and whether the cluster has room for more (autoscaling),
and an upstream address with a path prefix (how the host reaches Serve's proxy)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from mlctl.runtime.host.upstream import Pool
from mlctl.runtime.ray import apps, appspec, cluster, directory

OWNER = "0123abcd"


def app_details(owner: str | None, digest: str = "sha256:" + "a" * 64, replicas=("RUNNING",), target=1) -> dict:
    env = {"MLCTL_SERVING_DIGEST": digest, "MLCTL_MODEL_DIGEST": "sha256:m"}
    if owner:
        env[apps.OWNER_VAR] = owner
    return {
        "status": "RUNNING",
        "deployments": {
            "scorer": {
                "target_num_replicas": target,
                "deployment_config": {"num_replicas": target, "ray_actor_options": {"runtime_env": {"env_vars": env}}},
                "replicas": [
                    {"replica_id": f"r{i}", "state": s, "node_id": f"n{i % 2}", "log_file_path": f"/serve/r{i}.log"}
                    for i, s in enumerate(replicas)
                ],
            }
        },
    }


def test_names_prefixes_and_parsing():
    name = apps.app_name(OWNER, "my-ep", "blue-2", "sha256:" + "f" * 64)
    assert str(name) == f"mlctl-{OWNER}-my-ep-blue-2-ffffffffffff" and name.route_prefix == "/" + str(name)
    assert str(name).startswith(apps.deployment_prefix(OWNER, "my-ep", "blue-2"))
    assert str(name).startswith(apps.endpoint_prefix(OWNER, "my-ep"))
    assert apps.parse(str(name), OWNER, {"my-ep": {"blue-2"}}) == name  # hyphens split by the known names
    assert apps.parse(str(name), "ffffffff") is None  # another project's
    assert apps.parse("team-x", OWNER) is None
    assert apps.owner_of("/a/.mlctl") != apps.owner_of("/b/.mlctl") and len(apps.owner_of("/a")) == 8


def test_owned_needs_the_name_prefix_and_the_owner_mark():
    details = {
        "applications": {
            f"mlctl-{OWNER}-ep-blue-aaaaaaaaaaaa": app_details(OWNER),
            f"mlctl-{OWNER}-ep-blue-bbbbbbbbbbbb": app_details(None),  # our name, no mark: not ours
            f"mlctl-{OWNER}-ep-green-cccccccccccc": app_details("deadbeef"),  # another owner's mark
            "team-x": app_details(OWNER),
        }
    }  # our mark, not our name
    assert set(apps.owned(details, OWNER)) == {f"mlctl-{OWNER}-ep-blue-aaaaaaaaaaaa"}
    assert apps.owned(details, OWNER, apps.deployment_prefix(OWNER, "ep", "green")) == {}


def test_replicas_states_and_what_an_application_serves():
    app = app_details(OWNER, replicas=("RUNNING", "STARTING", "RUNNING"), target=3)
    rs = apps.replicas(app)
    assert [(r["index"], r["state"], r["node_id"], r["ready"]) for r in rs] == [
        (0, "RUNNING", "n0", True),
        (1, "STARTING", "n1", False),
        (2, "RUNNING", "n0", True),
    ]
    assert apps.target_replicas(app) == 3 and apps.status(app) == "RUNNING"
    assert apps.serves(app, "sha256:" + "a" * 64) and not apps.serves(app, "sha256:b")


def test_a_scale_down_names_the_registered_replicas_serve_stops():
    app = app_details(OWNER, replicas=("RUNNING", "STOPPING", "STOPPING", "RUNNING"), target=2)
    registered = {"r0": {"address": "tcp:10.0.0.1:1"}, "r1": {"address": "tcp:10.0.0.1:2"}, "r3": {}}
    assert directory.stopping(app, registered) == ["r1"]  # r2 was released (its entry is gone)
    assert [s["replica_id"] for s in directory.running(app, registered)] == ["r0", "r3"]


def test_the_cluster_has_no_room_when_no_node_holds_one_more_replica():
    app = app_details(OWNER, replicas=("RUNNING", "STARTING"), target=2)
    app["deployments"]["scorer"]["deployment_config"]["ray_actor_options"]["num_cpus"] = 3
    assert cluster.room_message(app, [{"CPU": 1.0}, {"CPU": 3.0}]) == ""
    said = cluster.room_message(app, [{"CPU": 1.0}, {"CPU": 0.5, "memory": 2**30}])
    assert said.startswith("no node of the cluster has room for one more replica (each reserves CPU 3; the most CPUs")
    assert "available on a node now: 1)" in said and "Ray's cluster autoscaler adds nodes" in said
    app["deployments"]["scorer"]["deployment_config"]["ray_actor_options"]["memory"] = 2**31
    assert cluster.room_message(app, [{"CPU": 4.0, "memory": 2**30}]).startswith("no node")  # CPUs, not memory
    serve_said = "Deployment 'scorer' in application 'x' has 1 replicas that have taken more than 30s to be scheduled."
    app["deployments"]["scorer"]["message"] = serve_said
    assert cluster.room_message(app, [{"CPU": 8.0, "memory": 2**33}]) == serve_said  # Serve's own word first


def test_replica_options_map_the_deployment_settings():
    spec = {
        "name": "blue",
        "digest": "sha256:x",
        "python": "",
        "code_dir": "/c",
        "scoring_script": "score.py",
        "model_dir": "/m",
        "instance_count": 3,
        "request_settings": {"max_concurrent_requests_per_instance": 4, "request_timeout_ms": 3000},
        "liveness_probe": {"period": 7, "timeout": 3},
        "launcher": "serve",
    }
    options = appspec.replica_options(spec, {"working_dir": "gcs://x"}, 0.5)
    assert options["num_replicas"] == 3 and options["max_ongoing_requests"] == 4
    assert (options["health_check_period_s"], options["health_check_timeout_s"]) == (7.0, 3.0)
    # a stopping replica waits for its host's release, then drains for the instance's timeout (3 s + 10 %) + 2 s
    assert abs(options["graceful_shutdown_timeout_s"] - (directory.RELEASE_S + 3.3 + 2)) < 1e-9
    assert options["ray_actor_options"] == {"num_cpus": 0.5, "runtime_env": {"working_dir": "gcs://x"}}
    requests = {"cpu": 0.1, "memory": 2**27, "gpu": 1}  # as the loader writes them (sizing.read_resources)
    sized = {**spec, "launch": {"resources": {"requests": requests, "limits": {"cpu": 0.2, "gpu": 1}}}}
    assert appspec.replica_options(sized, {}, 0.5)["ray_actor_options"] == {
        "num_cpus": 0.1,  # resources.requests: the placement's reservation
        "memory": 2**27,
        "num_gpus": 1,
        "runtime_env": {},
    }
    app = apps.app_name(OWNER, "ep", "blue", "sha256:" + "1" * 64)
    replica = appspec.replica_spec(spec, "s3cret")
    assert replica["hop_secret"] == "s3cret" and replica["max_concurrent"] == 4
    assert replica["instance_timeout_ms"] > 3000  # the gateway's 408 comes first
    servers = [{"replica_id": "r1", "address": "tcp:10.0.0.2:41234", "node_id": "n1"}]
    launch = appspec.with_servers(spec, "10.0.0.1:6379", app, "s3cret", servers)["launch"]
    assert launch == {"cluster": "10.0.0.1:6379", "application": str(app), "servers": servers, "hop_secret": "s3cret"}


def test_an_upstream_address_with_a_path_prefix_sends_every_target_under_it():
    async def scenario():
        seen = []

        async def handler(request):
            seen.append(request.path_qs)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            pool = Pool(f"tcp:127.0.0.1:{port}/mlctl-x-ep-blue")
            for target in ("/", "/score?a=1", "/score"):  # the second /score reuses the kept-alive connection
                _, _, answer = await pool.request("GET", target, b"", b"")
                assert (await answer)[0] == 200
            pool.close()
        finally:
            await runner.cleanup()
        return seen

    assert asyncio.run(scenario()) == ["/mlctl-x-ep-blue/", "/mlctl-x-ep-blue/score?a=1", "/mlctl-x-ep-blue/score"]
