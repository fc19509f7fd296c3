"""The in-cluster hosts' configuration (mlctl/runtime/ray/hostconfig.py): what each admin order the hosts took
changes in it, so a host that Ray restarts configures itself as its peers are; and the hosts' `show` report, with
the hosts Ray's tables say cannot answer (lost with their node, waiting for a node of their own) as drift."""

from __future__ import annotations

from mlctl.reconciler.rules import DRIFT
from mlctl.resources import Kind
from mlctl.runtime.ray import hostconfig, ingressdriver, ingresshealth, ingresshosts

SPEC = {"name": "blue", "digest": "sha256:1", "instance_count": 2}


def config() -> dict:
    return {**hostconfig.initial("e", "key", None, 2, {}, None), "keys": {"primary": "p"}}


def test_orders_recorded_in_the_configuration():
    c = hostconfig.applied(config(), "POST", "/deployments/blue?timeout=120", SPEC)
    assert c["deployments"] == {"blue": SPEC}
    rolled = {**SPEC, "digest": "sha256:2"}
    c = hostconfig.applied(c, "POST", "/deployments/blue/roll?timeout=9", rolled)
    assert c["deployments"]["blue"]["digest"] == "sha256:2"
    c = hostconfig.applied(c, "POST", "/deployments/blue/scale?timeout=9", {"instance_count": 3})
    assert c["deployments"]["blue"]["instance_count"] == 3
    ranged = {"scale_settings": {"type": "target_utilization"}, "instance_count": 2}
    c = hostconfig.applied(c, "PUT", "/deployments/blue/scaling?timeout=9", ranged)
    assert c["scaling"] == {"blue": ranged}
    c = hostconfig.applied(c, "PUT", "/traffic", {"traffic": {"blue": 100}, "mirror_traffic": {}})
    assert c["traffic"] == {"blue": 100}
    c = hostconfig.applied(c, "PUT", "/auth", {"auth_mode": "aml_token"})
    assert c["auth_mode"] == "aml_token"
    for unchanged in (("POST", "/deployments/blue/revive?timeout=9"), ("POST", "/keys/reload"), ("GET", "/status")):
        assert hostconfig.applied(c, *unchanged, {}) == c
    c = hostconfig.applied(c, "DELETE", "/deployments/blue", None)
    assert c["deployments"] == {} and c["scaling"] == {}
    assert c["keys"] == {"primary": "p"}  # orders never touch the keys


def test_an_order_does_not_change_the_configuration_it_was_given():
    before = config()
    hostconfig.applied(before, "POST", "/deployments/blue", SPEC)
    assert before["deployments"] == {}


def test_status_is_the_first_running_hosts_with_where_each_runs():
    down = {
        "index": 0,
        "node_ip": "10.0.0.1",
        "node_id": "a",
        "pid": None,
        "actor_pid": 5,
        "port": None,
        "running": False,
        "problem": "port taken",
        "status": None,
    }
    up = {
        "index": 1,
        "node_ip": "10.0.0.2",
        "node_id": "b",
        "pid": 7,
        "actor_pid": 6,
        "port": 80,
        "running": True,
        "problem": "",
        "status": {"pid": 7, "port": 80, "deployments": {}},
    }
    merged = ingresshosts.merged_status([down, up])
    assert merged["pid"] == 7 and [h["running"] for h in merged["hosts"]] == [False, True]
    assert ingresshosts.merged_status([down]) is None
    silent = {**up, "status": None}  # its process runs but it did not answer: not counted as serving
    assert ingresshosts.merged_status([down, silent]) is None
    assert [h["running"] for h in ingresshosts.merged_status([silent, up])["hosts"]] == [False, True]


def test_a_host_whose_actor_cannot_answer_is_reported_lost_from_rays_tables_and_is_drift():
    alive = {"a": "10.0.0.1"}

    def info(state: str, node: str) -> dict:
        return {"State": state, "Address": {"NodeID": node, "IPAddress": "10.0.0.2" if node == "b" else "10.0.0.1"}}

    assert ingresshealth.lost(0, info("ALIVE", "a"), alive) is None  # asked, not reported from the tables
    dead_node = ingresshealth.lost(1, info("ALIVE", "b"), alive)  # before the GCS restarts its actor
    assert dead_node["running"] is False and "10.0.0.2 is not alive" in dead_node["problem"]
    waiting = ingresshealth.lost(1, info("RESTARTING", "b"), alive)
    assert "waits for a node of its own" in waiting["problem"] and "10.0.0.2 was lost" in waiting["problem"]
    assert waiting["node_ip"] == "" and waiting["status"] is None
    assert "mlctl apply" in ingresshealth.lost(1, info("DEAD", "a"), alive)["problem"]
    assert "DEAD" == ingresshealth.lost(1, {}, alive)["actor_state"]  # no entry in the GCS: gone

    up = {"index": 0, "node_ip": "10.0.0.1", "node_id": "a", "pid": 7, "actor_pid": 6, "port": 80, "problem": ""}
    up |= {"running": True, "status": {"pid": 7, "port": 80, "deployments": {}}}
    merged = ingresshosts.merged_status([up, waiting])
    lines = ingresshealth.lost_hosts(merged["hosts"])
    assert lines == [f"host 1: {waiting['problem']}"]
    seen = ingressdriver.observed({"name": "e"}, merged)
    assert seen.alive and seen.hosts_lost == lines
    assert any(r.drifted(seen, {}) for r in DRIFT[Kind.ENDPOINT] if r.key == "hosts_lost")
    assert ingressdriver.observed({"name": "e"}, ingresshosts.merged_status([up])).hosts_lost == []
