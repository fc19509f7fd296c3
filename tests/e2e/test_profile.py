"""`mlctl profile` against real endpoints: the diabetes example loaded at a few concurrencies (figures are
not asserted, their presence and consistency are), the --json document against its schema, --plot, and
the refusals: bad flags, an unknown endpoint or deployment, a deployment that is not ready."""

import json
from pathlib import Path

import jsonschema
import pytest
from e2e_support import mlctl

SCHEMA = json.loads((Path(__file__).parents[2] / "mlctl" / "schemas" / "profile.schema.json").read_text())
SMALL = ("--duration", "1s", "--max-requests", "400")  # keep the load small


def test_profile_of_the_example_is_consistent_and_sized_for_what_it_measured(example_project, tmp_path):
    yml = example_project / "blue-deployment.yml"  # four in flight are served, not turned away (429)
    yml.write_text(yml.read_text() + "request_settings:\n  max_concurrent_requests_per_instance: 4\n")
    mlctl(example_project, "apply", "--auto-approve")
    out = mlctl(
        example_project,
        "profile",
        "diabetes",
        "--deployment",
        "blue",
        "--request-file",
        "sample-request.json",
        "--concurrency",
        "1,2,4",
        *SMALL,
        "--json",
    )
    doc = json.loads(out.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert [s["concurrency"] for s in doc["steps"]] == [1, 2, 4]
    for s in doc["steps"]:
        assert s["requests"] > 0 and s["errors"] == 0 and s["instances"] == 1
        assert 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["p90"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"]
        in_flight = s["rps"] * s["latency_ms"]["mean"] / 1000  # Little's law: ~ the concurrency
        assert s["concurrency"] / 4 <= in_flight <= s["concurrency"] * 1.1, s
        assert s["requests"] <= 400 and s["duration_s"] < 1 + 30  # the caps held
        assert s["peak_memory_bytes"] > 0 and s["cpu_cores"] >= 0
    rec = doc["recommendation"]
    basis = next(s for s in doc["steps"] if s["concurrency"] == rec["basis_concurrency"])
    assert rec["instance_count"] * basis["rps"] / basis["instances"] >= basis["rps"]  # holds the measured load
    assert rec["memory_gib"] * 1024**3 >= max(s["peak_memory_bytes"] for s in doc["steps"])
    assert rec["max_concurrent_requests_per_instance"] >= 1 and rec["instance_type"].startswith("Standard_")
    assert rec["meets_target_p99"] is None and rec["arithmetic"]

    png = tmp_path / "profile.png"
    text = mlctl(
        example_project,
        "profile",
        "diabetes",
        "--deployment",
        "blue",
        "--request-file",
        "sample-request.json",
        "--concurrency",
        "1,2",
        *SMALL,
        "--target-rps",
        "500",
        "--target-p99-ms",
        "2000",
        "--plot",
        str(png),
    )
    assert "req/s" in text.stdout and "p99 ms" in text.stdout and "instance_count = ceil(500.0 req/s" in text.stdout
    assert "max_concurrent_requests_per_instance:" in text.stdout and "instance_type: Standard_" in text.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    count = int(text.stdout.split("instance_count: ")[1].split()[0])
    per_instance = float(text.stdout.split("per instance: ")[1].split(" = ")[1].split()[0])
    assert count * per_instance >= 500  # holds the target


def test_profile_refuses_a_deployment_that_is_not_ready_and_unknown_names(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}, "green": {"fail": True}})
    assert mlctl(root, "apply", "--auto-approve", check=False).returncode == 1
    (root / "req.json").write_text("{}")
    args = ("--request-file", "req.json", "--concurrency", "1", *SMALL)
    refused = mlctl(root, "profile", "split", "--deployment", "green", *args, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "deployment 'green' of endpoint 'split' is not ready" in refused.stderr and refused.stdout == ""
    unknown = mlctl(root, "profile", "split", "--deployment", "purple", *args, check=False)
    assert (
        unknown.returncode == 1 and "has no deployment 'purple'" in unknown.stderr and "blue, green" in unknown.stderr
    )
    nowhere = mlctl(root, "profile", "nosuch", "--deployment", "blue", *args, check=False)
    assert nowhere.returncode == 1 and "no endpoint 'nosuch'" in nowhere.stderr
    ok = mlctl(root, "profile", "split", "--deployment", "blue", *args)  # the ready one runs
    assert "instance_count = ceil(" in ok.stdout


@pytest.mark.parametrize(
    "flags, says",
    [
        (("--concurrency", "1,x"), "--concurrency '1,x': 'x' is not a concurrency"),
        (("--concurrency", "0"), "'0' is not a concurrency from 1 to 256"),
        (("--duration", "20x"), "--duration '20x': not a duration"),
        (("--duration", "10m"), "600s is outside the bounds"),
        (("--max-requests", "1000000"), "--max-requests '1000000': outside 1..100000"),
        (("--target-rps", "0"), "--target-rps '0': a target must be more than 0"),
        (("--request-file", "missing.json"), "cannot read the request file missing.json"),
    ],
)
def test_bad_flags_are_clear_errors(tmp_path, flags, says):
    (tmp_path / "req.json").write_text("{}")
    args = {"--request-file": "req.json", "--deployment": "blue"}
    args.update(dict(zip(flags[::2], flags[1::2])))
    out = mlctl(tmp_path, "profile", "split", *[x for kv in args.items() for x in kv], check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert says in out.stderr, out.stderr


def test_plot_without_matplotlib_is_a_clear_error_before_any_load(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "matplotlib.py").write_text("raise ImportError('matplotlib is blocked for this test')\n")
    (tmp_path / "req.json").write_text("{}")
    import os

    env = {**os.environ, "PYTHONPATH": str(blocked)}
    out = mlctl(
        tmp_path,
        "profile",
        "split",
        "--deployment",
        "blue",
        "--request-file",
        "req.json",
        "--plot",
        "x.png",
        check=False,
        env=env,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "--plot needs matplotlib" in out.stderr and "mlctl[plot]" in out.stderr
