"""The runtime contract, run on every runtime (the fake and the real local one): the engine's orders
are carried out as the contract says, observed values come back typed, and operations work."""

from __future__ import annotations

import pytest

from mlctl.reconciler import apply as engine
from mlctl.reconciler.operations import apply_project, leftovers, load_valid_config, make_plan, project_runtimes
from mlctl.reconciler.plans import plan
from mlctl.reconciler.refresh import refresh
from mlctl.resources import Address, Kind
from mlctl.runtime.contract import InstanceUsage, Order
from mlctl.observed import OBSERVED
from mlctl.state.lock import state_lock
from mlctl.state.statefile import read_state


def orders(p) -> dict[str, Order]:
    return {str(c.address): c.order for c in p.changes if c.order is not None}


def test_apply_records_the_runtime_and_typed_observed_values(harness):
    harness.write(blue={"count": 1})
    _, state = apply_project(harness.project)
    assert {rs.runtime for rs in state.resources.values()} == {harness.runtime_name}
    for address, rs in state.resources.items():
        assert type(rs.observed) is OBSERVED[Kind(rs.kind)], address
    assert read_state(harness.project.state_path).resources[Address.parse("endpoint.ctr")].observed.alive is True
    dep = state.resources[Address.parse("deployment.ctr.blue")].observed
    assert (dep.instance_count, dep.ready_instances) == (1, 1)
    assert state.resources[Address.parse("traffic.ctr")].observed.traffic == {"blue": 100}
    _, _, again = make_plan(harness.project)
    assert not again.has_changes()


def test_operations_reach_the_running_endpoint(harness):
    harness.write(blue={"count": 2})
    apply_project(harness.project)
    rt = harness.runtime
    url = rt.endpoint_url(harness.project, "ctr")
    port = read_state(harness.project.state_path).resources[Address.parse("endpoint.ctr")].observed.port
    assert url == f"http://127.0.0.1:{port}"
    keys = rt.keys(harness.project, "ctr")
    assert set(keys) == {"primary", "secondary"} and keys["primary"] != keys["secondary"]
    assert rt.authorization(harness.project, "ctr", "key") == f"Bearer {keys['primary']}"
    status = rt.endpoint_status(harness.project, "ctr")
    assert status["traffic"] == {"blue": 100} and status["deployments"]["blue"]["ready_instances"] == 2
    usage = rt.usage(harness.project, "ctr", "blue")
    assert [u.index for u in usage] == [0, 1] and all(isinstance(u, InstanceUsage) for u in usage)
    rt.regenerate_key(harness.project, "ctr", "secondary")
    assert rt.keys(harness.project, "ctr")["primary"] == keys["primary"]
    assert rt.keys(harness.project, "ctr")["secondary"] != keys["secondary"]


def test_scale_roll_and_a_failed_roll_that_leaves_the_old_serving(harness):
    harness.write(blue={"count": 1})
    apply_project(harness.project)
    harness.write(blue={"count": 2})
    _, _, p = make_plan(harness.project)
    assert orders(p) == {"deployment.ctr.blue": Order.SCALE}
    _, state = apply_project(harness.project)
    dep = state.resources[Address.parse("deployment.ctr.blue")].observed
    assert (dep.instance_count, dep.ready_instances) == (2, 2)

    harness.write(blue={"count": 2, "concurrency": 2})
    _, _, p = make_plan(harness.project)
    assert orders(p) == {"deployment.ctr.blue": Order.ROLL}
    _, state = apply_project(harness.project)
    rolled = state.resources[Address.parse("deployment.ctr.blue")].observed.serving_digest
    assert rolled and rolled != dep.serving_digest

    harness.write(blue={"count": 2, "concurrency": 3, "fail": True})
    with pytest.raises(engine.ApplyFailed) as failed:
        apply_project(harness.project)
    assert "init" in failed.value.log_tail
    state = read_state(harness.project.state_path)
    recorded = state.resources[Address.parse("deployment.ctr.blue")]
    assert recorded.status == "ready" and recorded.failed_roll and state.pending is None  # the old one is the record
    seen = refresh(harness.project, state, project_runtimes(harness.project))[Address.parse("deployment.ctr.blue")]
    assert (seen.serving_digest, seen.ready_instances) == (rolled, 2)  # the old one still serves

    harness.write(blue={"count": 2, "concurrency": 3})
    _, state = apply_project(harness.project)
    assert state.resources[Address.parse("deployment.ctr.blue")].status == "ready"


def test_recreate_keeps_the_endpoint_port_and_keys(harness):
    harness.write(blue={"count": 1})
    _, state = apply_project(harness.project)
    port, keys = (
        state.resources[Address.parse("endpoint.ctr")].observed.port,
        harness.runtime.keys(harness.project, "ctr"),
    )
    config = load_valid_config(harness.project)
    runtimes = project_runtimes(harness.project)
    with state_lock(harness.project.state_path, "apply"):
        state = read_state(harness.project.state_path)
        p = plan(
            config,
            state,
            refresh(harness.project, state, runtimes),
            replace=["endpoint.ctr"],
            runtime=harness.runtime_name,
        )
        assert orders(p) == {
            "endpoint.ctr": Order.RECREATE,
            "deployment.ctr.blue": Order.RECREATE,
            "traffic.ctr": Order.UPDATE,
        }
        state = engine.apply(p, harness.project, state, runtimes)
    assert state.resources[Address.parse("endpoint.ctr")].observed.port == port
    assert harness.runtime.keys(harness.project, "ctr") == keys
    assert harness.runtime.endpoint_status(harness.project, "ctr")["deployments"]["blue"]["ready_instances"] == 1


def test_delete_and_destroy_leave_nothing(harness):
    harness.write(blue={"count": 1}, green={"count": 1})
    apply_project(harness.project)
    harness.write(blue={"count": 1})
    _, _, p = make_plan(harness.project)
    assert orders(p) == {"deployment.ctr.green": Order.DELETE, "model.ctr-green-model": Order.DELETE}
    apply_project(harness.project)
    assert set(harness.runtime.endpoint_status(harness.project, "ctr")["deployments"]) == {"blue"}
    _, state = apply_project(harness.project, destroy=True, allow_destroy=True)
    assert state.resources == {}
    assert harness.runtime.endpoint_url(harness.project, "ctr") is None
    assert leftovers(harness.project, state) == []


def test_operate_commands_use_the_runtime_recorded_for_the_endpoint(tmp_path):
    """`show` reads an endpoint through the runtime that made it, whatever --runtime says, and says so."""
    import json
    import subprocess
    import sys

    from contract_harness import Harness
    from e2e_support import cleanup

    h = Harness(tmp_path / "proj", "local")
    h.write(blue={"count": 1})
    try:
        apply_project(h.project)
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "mlctl.cli",
                "-C",
                str(h.project.root),
                "--runtime",
                "docker",
                "show",
                "ctr",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["runtime"] == "local"
        assert json.loads(shown.stdout)["deployments"]["blue"]["ready_instances"] == 1
        assert "--runtime docker is for plan and apply" in shown.stderr
    finally:
        cleanup(h.project.root)
