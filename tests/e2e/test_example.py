"""The diabetes example end to end: apply (a real uv virtualenv), invoke, keys, no-op re-apply, destroy."""

import json

from e2e_support import Endpoint, alive, host_pids, keys, mlctl, project_processes

SAMPLE = "sample-request.json"


def test_example_applies_scores_and_authenticates(example_project):
    applied = mlctl(example_project, "apply", "--auto-approve")
    assert "Apply complete!" in applied.stdout
    assert "endpoint.diabetes: http://127.0.0.1:" in applied.stdout
    assert "is not used by the local runtime" in applied.stdout  # cloud base image reported

    answer = mlctl(example_project, "invoke", "diabetes", "--request-file", SAMPLE)
    predictions = json.loads(answer.stdout)
    assert len(predictions) == 2 and all(isinstance(x, float) for x in predictions)

    k = keys(example_project, "diabetes")
    ep = Endpoint(example_project, "diabetes")
    body = (example_project / SAMPLE).read_bytes()
    assert ep.score(body, k["primaryKey"])[0] == 200
    assert ep.score(body, k["secondaryKey"])[0] == 200
    assert ep.score(body, "not-" + k["primaryKey"])[0] == 401
    assert ep.score(body, None)[0] == 401

    mlctl(example_project, "keys", "diabetes", "--regenerate", "primary")
    fresh = keys(example_project, "diabetes")
    assert fresh["primaryKey"] != k["primaryKey"] and fresh["secondaryKey"] == k["secondaryKey"]
    assert ep.score(body, k["primaryKey"])[0] == 401
    status, out = ep.score(body, fresh["primaryKey"])
    assert status == 200 and json.loads(out) == predictions
    ep.close()

    again = mlctl(example_project, "apply", "--auto-approve")
    assert "No changes." in again.stdout and "Apply complete" not in again.stdout

    shown = json.loads(mlctl(example_project, "show", "diabetes", "--json").stdout)
    assert shown["provisioning_state"] == "Succeeded" and shown["traffic"] == {"blue": 100}
    assert shown["scoring_uri"].endswith("/score") and shown["openapi_uri"].endswith("/swagger.json")
    assert shown["auth_mode"] == "key" and shown["mirror_traffic"] == {}
    blue = shown["deployments"]["blue"]
    assert blue["ready_instances"] == 1 and blue["state"] == "ready"
    assert [(i["index"], i["ready"], i["restarts"]) for i in blue["instances"]] == [(0, True, 0)]
    assert alive(blue["instances"][0]["pid"])
    text = mlctl(example_project, "show", "diabetes").stdout
    assert "endpoint diabetes  (Succeeded)" in text and "auth_mode: key" in text and "instance 0: pid" in text

    state = json.loads((example_project / ".mlctl" / "state.json").read_text())
    image = state["resources"]["image.diabetes-blue-env"]["observed"]
    assert any(x.startswith("scikit-learn==") for x in image["frozen"])  # uv pip freeze recorded
    assert image["built_with"] == "uv"

    pids = host_pids(example_project)
    assert len(pids) >= 2
    mlctl(example_project, "destroy", "--auto-approve")
    assert not [p for p in pids if alive(p)]  # destroy leaves no process
    assert project_processes(example_project) == []
    assert json.loads((example_project / ".mlctl" / "state.json").read_text())["resources"] == {}


def test_invoke_reports_http_errors_with_exit_1(example_project):
    mlctl(example_project, "apply", "--auto-approve")
    bad = example_project / "bad.json"
    bad.write_text('{"data": "not a matrix"}')
    out = mlctl(example_project, "invoke", "diabetes", "--request-file", str(bad), check=False)
    assert out.returncode == 1 and "HTTP" in out.stderr
    missing = mlctl(
        example_project, "invoke", "diabetes", "--request-file", SAMPLE, "--deployment", "nope", check=False
    )
    assert missing.returncode == 1 and "404" in missing.stderr
    keys_file = example_project / ".mlctl" / "secrets" / "diabetes.json"
    keys_file.rename(keys_file.with_name("moved"))  # a lost keys file is a clear error
    lost = mlctl(example_project, "invoke", "diabetes", "--request-file", SAMPLE, check=False)
    assert lost.returncode == 1 and "cannot read the keys of endpoint 'diabetes'" in lost.stderr
    assert "--replace endpoint.diabetes" in lost.stderr and "Traceback" not in lost.stderr
    keys_file.with_name("moved").rename(keys_file)
    pids = host_pids(example_project)
    refused = mlctl(example_project, "destroy", check=False, input="")  # not a terminal: refused
    assert refused.returncode == 1 and "refusing to destroy without confirmation" in refused.stderr
    assert "--auto-approve" in refused.stderr and all(alive(p) for p in pids)


def test_apply_refuses_without_approval_off_a_terminal(example_project):
    out = mlctl(example_project, "apply", check=False, input="")
    assert out.returncode == 1 and "--auto-approve" in out.stderr
    assert "Traceback" not in out.stderr
    assert (
        not (example_project / ".mlctl" / "state.json").exists()
        or json.loads((example_project / ".mlctl" / "state.json").read_text())["resources"] == {}
    )


def test_missing_python_is_an_error_before_any_change(example_project):
    conda = example_project / "environment" / "conda.yml"
    conda.write_text(conda.read_text().replace("python>=3.11", "python=3.99"))
    out = mlctl(example_project, "apply", "--auto-approve", check=False)
    assert out.returncode == 1
    assert "No Python interpreter on this machine satisfies python 3.99" in out.stderr
    assert "image.diabetes-blue-env" in out.stderr and "Traceback" not in out.stderr
    assert "change the python version in the conda file /" in out.stderr and "environment/conda.yml" in out.stderr
    state = example_project / ".mlctl" / "state.json"
    assert not state.exists() or json.loads(state.read_text())["resources"] == {}
    assert not list((example_project / ".mlctl").glob("run/*.json"))
    # a plan that does not refresh (a CI runner without the runtime) does not need the interpreter
    assert mlctl(example_project, "plan", "--refresh=false", check=False).returncode == 0


def test_failed_image_build_stops_apply_with_the_build_log(example_project):
    conda = example_project / "environment" / "conda.yml"
    conda.write_text(conda.read_text().replace("- joblib", "- mlctl-no-such-package-xyz==0.0.1"))
    out = mlctl(example_project, "apply", "--auto-approve", check=False)
    assert out.returncode == 1 and "Traceback (most recent call last)" not in out.stderr
    assert "building the virtualenv of image.diabetes-blue-env failed" in out.stderr
    assert "mlctl-no-such-package-xyz" in out.stderr and "The build log is" in out.stderr
    assert "image.diabetes-blue-env: creating a virtualenv with Python" in out.stdout  # progress shown
    assert "image.diabetes-blue-env: installing" in out.stdout
    state = json.loads((example_project / ".mlctl" / "state.json").read_text())
    assert state["resources"]["image.diabetes-blue-env"]["status"] == "failed"
    assert "endpoint.diabetes" not in state["resources"]  # apply stopped there
    assert project_processes(example_project) == []


def test_legacy_form_applies_the_same_endpoint(example_project):
    """examples/diabetes/legacy/endpoint.yml (one file, deployments inside) is the same endpoint."""
    out = mlctl(example_project, "-f", "legacy/endpoint.yml", "apply", "--auto-approve")
    assert "Apply complete! Resources: 6 added" in out.stdout
    answer = json.loads(mlctl(example_project, "invoke", "diabetes", "--request-file", SAMPLE).stdout)
    assert len(answer) == 2
    split = mlctl(example_project, "plan", "--detailed-exitcode", check=False)  # the split form: no change
    assert split.returncode == 0 and "No changes." in split.stdout
