"""Operate commands on a running endpoint: logs (tail, --follow, storage-initializer), list, saved plans."""

import json
import select
import subprocess
import sys
import time
import uuid

from e2e_support import Endpoint, alive, keys, mlctl, wait_until


def test_logs_tail_follow_and_storage_initializer(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    key = keys(root, "split")["primaryKey"]
    ep = Endpoint(root, "split")
    assert ep.score(key=key)[0] == 200
    tail = mlctl(root, "logs", "split", "--deployment", "blue", "--lines", "50")
    assert "POST /score 200" in tail.stdout
    init = mlctl(root, "logs", "split", "--deployment", "blue", "--container", "storage-initializer")
    assert "registered at" in init.stdout and "mlctl's own interpreter" in init.stdout

    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlctl.cli",
            "-C",
            str(root),
            "logs",
            "split",
            "--deployment",
            "blue",
            "--lines",
            "1",
            "--follow",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        request_id = uuid.uuid4().hex
        ep.conn.request(
            "POST", "/score", body=b"{}", headers={"Authorization": f"Bearer {key}", "x-request-id": request_id}
        )
        assert ep.conn.getresponse().read()
        seen, deadline = [], time.monotonic() + 30
        while time.monotonic() < deadline and not any(request_id in s for s in seen):
            ready, _, _ = select.select([follow.stdout], [], [], 0.5)
            if ready:
                seen.append(follow.stdout.readline())
        assert any(request_id in s for s in seen), seen
    finally:
        follow.kill()
        follow.wait()
        follow.stdout.close()
        ep.close()
    listed = json.loads(mlctl(root, "list", "--json").stdout)
    assert [e["name"] for e in listed] == ["split"] and listed[0]["provisioning_state"] == "Succeeded"


def test_saved_plan_applies_once_and_a_stale_one_is_refused(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "plan", "--out", "first.plan")
    out = mlctl(root, "apply", "first.plan")  # a saved plan needs no --auto-approve
    assert "Apply complete!" in out.stdout
    stale = mlctl(root, "apply", "first.plan", check=False)  # the state moved since
    assert stale.returncode == 1 and "Traceback" not in stale.stderr
    mlctl(root, "plan", "--out", "second.plan")
    (root / "code" / "score.py").write_text((root / "code" / "score.py").read_text() + "\n# edited\n")
    edited = mlctl(root, "apply", "second.plan", check=False)  # a referenced file moved since
    assert edited.returncode == 1 and "score.py" in edited.stderr


def test_aml_token_auth_and_switching_auth_mode_in_place(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}}, auth_mode="aml_token")
    mlctl(root, "apply", "--auto-approve")
    issued = json.loads(mlctl(root, "keys", "split", "--json").stdout)
    assert issued["tokenType"] == "Bearer" and issued["expiryTimeUtc"] > time.time() + 3000
    text = mlctl(root, "keys", "split").stdout
    assert "token: " in text and "expires: " in text
    ep = Endpoint(root, "split")
    assert ep.score(key=issued["accessToken"])[0] == 200
    assert ep.score(key=issued["accessToken"][:-2] + "xx")[0] == 401
    assert json.loads(mlctl(root, "invoke", "split", "--request-file", "code/score.py").stdout) == {"who": "blue"}

    pid = json.loads(mlctl(root, "show", "split", "--json").stdout)["host"]["pid"]
    p.write({"blue": 100}, {"blue": {}}, auth_mode="key")
    out = mlctl(root, "apply", "--auto-approve")
    assert "endpoint.split: updating" in out.stdout
    assert json.loads(mlctl(root, "show", "split", "--json").stdout)["host"]["pid"] == pid  # in place
    assert ep.score(key=issued["accessToken"])[0] == 401
    assert ep.score(key=keys(root, "split")["primaryKey"])[0] == 200
    ep.close()


def test_endpoint_deleted_only_when_allowed(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    old_pid = json.loads(mlctl(root, "show", "split", "--json").stdout)["host"]["pid"]
    serial = json.loads((root / ".mlctl" / "state.json").read_text())["serial"]
    p.endpoint = "renamed"  # endpoint.split leaves the configuration
    p.write({"blue": 100}, {"blue": {}})
    refused = mlctl(root, "apply", "--auto-approve", check=False)
    assert refused.returncode == 1 and "--allow-destroy" in refused.stderr
    assert "endpoint.split" in refused.stdout + refused.stderr
    assert json.loads((root / ".mlctl" / "state.json").read_text())["serial"] == serial  # nothing changed
    assert alive(old_pid)
    out = mlctl(root, "apply", "--auto-approve", "--allow-destroy")
    assert "Apply complete!" in out.stdout
    assert wait_until(lambda: not alive(old_pid))
    assert [e["name"] for e in json.loads(mlctl(root, "list", "--json").stdout)] == ["renamed"]


def test_destroy_stops_hosts_the_state_lost(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    shown = json.loads(mlctl(root, "show", "split", "--json").stdout)
    pids = [shown["host"]["pid"]] + [i["pid"] for i in shown["deployments"]["blue"]["instances"]]
    (root / ".mlctl" / "state.json").unlink()
    out = mlctl(root, "destroy", "--auto-approve")
    assert "is not in the state: stopping it" in out.stdout
    assert wait_until(lambda: not any(alive(pid) for pid in pids))


def test_a_project_file_naming_the_local_runtime_applies_and_serves_as_before(split_project):
    p, root = split_project, split_project.root
    (root / "mlctl.yaml").write_text("runtime: local\nlocal: {}\n")
    p.write({"blue": 100}, {"blue": {}})
    out = mlctl(root, "apply", "--auto-approve")
    assert "Apply complete! Resources: 4 added" in out.stdout and "mlctl.yaml" not in out.stderr
    state = json.loads((root / ".mlctl" / "state.json").read_text())
    assert {r["runtime"] for r in state["resources"].values()} == {"local"}
    ep = Endpoint(root, "split")
    status, body = ep.score(key=keys(root, "split")["primaryKey"])
    assert (status, json.loads(body)) == (200, {"who": "blue"})
    ep.close()
    assert mlctl(root, "plan", "--detailed-exitcode").returncode == 0
    again = mlctl(root, "--runtime", "kubernetes", "plan", check=False)
    assert again.returncode == 1 and "the kubernetes runtime is not in this version of mlctl" in again.stderr
