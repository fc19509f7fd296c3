"""The plan, graph and state commands run as a user runs them (subprocess): output, exit codes, errors."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import jsonschema
import pytest

from goldens import HERE, copy_project, loaded, portable_state, project, state_from_resources
from test_golden import SCHEMA


def mlctl(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "mlctl.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture
def proj(tmp_path):
    return project(copy_project(HERE / "_project", tmp_path / "project"))


@pytest.fixture
def applied(proj):
    """The project with the state apply would have written for it."""
    proj.ensure_data_dir()
    proj.state_path.write_text(
        portable_state(state_from_resources(loaded(proj).resources), proj.root).replace("$PROJECT", str(proj.root))
    )
    return proj


def test_first_plan_exit_codes_and_formats(proj):
    r = mlctl("-C", str(proj.root), "plan", "--refresh=false", "--detailed-exitcode")
    assert r.returncode == 2, r.stderr
    assert r.stdout.rstrip().splitlines()[-1] == "Plan: 12 to add, 0 to change, 0 to replace, 0 to destroy."
    assert "Traceback" not in r.stderr
    j = mlctl("-C", str(proj.root), "plan", "--refresh=false", "--json")
    assert j.returncode == 0
    jsonschema.validate(json.loads(j.stdout), SCHEMA)
    m = mlctl("-C", str(proj.root), "plan", "--refresh=false", "--markdown")
    assert m.stdout.startswith("### mlctl plan\n\n**Plan: 12 to add")


def test_no_changes_exit_0_and_state_commands(applied):
    root = str(applied.root)
    r = mlctl("-C", root, "plan", "--refresh=false", "--detailed-exitcode")
    assert (r.returncode, r.stdout.splitlines()[-1]) == (0, "No changes. The runtime matches the configuration.")
    lst = mlctl("-C", root, "state", "list")
    assert lst.stdout.splitlines() == [
        "model.fraud",
        "environment.shop-blue-env",
        "environment.shop-green-env",
        "image.shop-blue-env",
        "image.shop-green-env",
        "endpoint.batch",
        "endpoint.shop",
        "deployment.batch.main",
        "deployment.shop.blue",
        "deployment.shop.green",
        "traffic.batch",
        "traffic.shop",
    ]
    show = mlctl("-C", root, "state", "show", "deployment.shop.blue")
    assert show.returncode == 0
    assert show.stdout.splitlines()[:3] == ["# deployment.shop.blue", 'kind = "deployment"', 'status = "ready"']
    assert '  code = "code"' in show.stdout and "  code/score.py  " in show.stdout
    bad = mlctl("-C", root, "state", "show", "deployment.shop.bleu")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("Error: no resource deployment.shop.bleu in the state")
    assert "did you mean deployment.shop.blue?" in bad.stderr


def test_graph_formats(proj):
    dot = mlctl("-C", str(proj.root), "graph")
    assert dot.returncode == 0 and dot.stdout.startswith("digraph mlctl {")
    assert '  "model.fraud" -> "deployment.shop.blue";' in dot.stdout
    mer = mlctl("-C", str(proj.root), "graph", "--format", "mermaid")
    assert mer.stdout.startswith("flowchart LR\n") and "-->" in mer.stdout


def test_saved_plan_goes_stale_when_a_file_changes(applied):
    from mlctl.errors import MlctlError
    from mlctl.reconciler.planfile import load_plan
    from mlctl.schemas.load import load_config
    from mlctl.state.statefile import read_state

    root = applied.root
    (root / "blue.yml").write_text((root / "blue.yml").read_text().replace("instance_count: 1", "instance_count: 2"))
    r = mlctl("-C", str(root), "plan", "--refresh=false", "--out", "tfplan.json")
    assert r.returncode == 0 and "Saved the plan to tfplan.json" in r.stdout
    assert "Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy." in r.stdout
    fresh = load_plan(root / "tfplan.json", read_state(applied.state_path), load_config(applied), root=str(root))
    assert [str(c.address) for c in fresh.changes if c.action.value != "."] == ["deployment.shop.blue"]
    (root / "code" / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    with pytest.raises(MlctlError) as e:
        load_plan(root / "tfplan.json", read_state(applied.state_path), load_config(applied), root=str(root))
    assert str(e.value).splitlines()[0] == "Error: the saved plan is stale: code/score.py changed"


def test_plan_file_is_private_and_apply_refuses_an_old_truncated_or_foreign_one(applied):
    root = applied.root
    r = mlctl("-C", str(root), "plan", "--refresh=false", "--out", "tfplan.json")
    assert r.returncode == 0, r.stderr
    saved = root / "tfplan.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    doc = json.loads(saved.read_text())
    assert doc["format_version"] == "mlctl.planfile/v2"
    old = {
        "format_version": "mlctl.planfile/v1",
        "mlctl_version": "0.4.0",
        "binding": doc["binding"],
        "destroy": False,
        "plan": {"format_version": "mlctl.plan/v1", "resource_changes": []},
    }
    (root / "old.plan").write_text(json.dumps(old))
    (root / "cut.plan").write_text(saved.read_text()[:100])
    (root / "view.json").write_text(mlctl("-C", str(root), "plan", "--refresh=false", "--json").stdout)
    for name, first in [
        ("old.plan", "Error: the saved plan has format mlctl.planfile/v1 (written by mlctl 0.4.0)"),
        ("cut.plan", "Error: cannot read the saved plan: it is not complete JSON"),
        ("view.json", "Error: this is the `mlctl plan --json` view, not a saved plan"),
    ]:
        r = mlctl("-C", str(root), "apply", name)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(first) and r.stderr.splitlines()[1] == f"  at {root / name}"
        assert "reads and writes mlctl.planfile/v2 only" in r.stderr or name == "cut.plan"
        assert "mlctl plan --out FILE" in r.stderr
    r = mlctl("-C", str(root), "apply", "tfplan.json")
    assert r.returncode == 0 and "No changes." in r.stdout, r.stderr


def test_a_plan_file_holds_no_secret(applied):
    root = applied.root
    (root / "blue.yml").write_text(
        (root / "blue.yml").read_text()
        + textwrap.dedent("""\
        environment_variables:
          API_KEY: s3cret
          DATABASE_URL: postgres://admin:pa55word@db.internal:5432/shop
        """)
    )
    r = mlctl("-C", str(root), "plan", "--refresh=false", "--out", "tfplan.json")
    assert r.returncode == 0, r.stderr
    data = (root / "tfplan.json").read_bytes()
    assert b"s3cret" not in data and b"pa55word" not in data
    assert b'"path": "environment_variables"' in data  # the change is there, without its values


def test_plan_out_never_writes_through_a_symlink(applied):
    root = applied.root
    victim = root / "blue.yml"
    before = victim.read_text()
    (root / "tfplan.json").symlink_to(victim)
    r = mlctl("-C", str(root), "plan", "--refresh=false", "--out", "tfplan.json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"Error: {root / 'tfplan.json'} is a symbolic link; mlctl does not write a plan through one" in r.stderr
    assert victim.read_text() == before and (root / "tfplan.json").is_symlink()


def test_bad_input_is_a_clear_error(applied):
    root = str(applied.root)
    r = mlctl("-C", root, "plan", "--refresh=false", "--replace", "deployment.shop.purple")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("Error: --replace deployment.shop.purple: no such resource in the configuration")
    text = applied.state_path.read_text()
    applied.state_path.write_text(text[:-20])
    r = mlctl("-C", root, "plan", "--refresh=false")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("Error: cannot read the state file: invalid JSON")
    assert applied.state_path.read_text() == text[:-20]
    (applied.root / "blue.yml").write_text((applied.root / "blue.yml").read_text() + "instance_cout: 2\n")
    r = mlctl("-C", root, "plan", "--refresh=false")  # a config error and a broken state: both in one run
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert r.returncode == 1 and len(errors) == 2, r.stderr
    assert errors[0] == "Error: unknown field 'instance_cout'"
    assert errors[1].startswith("Error: cannot read the state file: invalid JSON at line ")
    (applied.root / "blue.yml").write_text((applied.root / "blue.yml").read_text().replace("instance_cout: 2\n", ""))
    applied.state_path.write_text(text)
    r = mlctl("-C", root, "plan", "--refresh=false", "--out", "no-such-folder/plan.json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[:2] == [
        f"Error: cannot write the plan to {applied.root / 'no-such-folder' / 'plan.json'}: No such file or directory",
        f"  at {applied.root / 'no-such-folder' / 'plan.json'}, field '--out'",
    ]


def test_held_lock_fails_naming_the_holder_and_a_waiter_can_be_interrupted(proj):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
        import sys
        from mlctl.state.lock import state_lock
        with state_lock(sys.argv[1], "apply"):
            print("locked", flush=True)
            sys.stdin.readline()
    """),
            str(proj.state_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        r = mlctl("-C", str(proj.root), "plan", "--detailed-exitcode")
        assert r.returncode == 1
        assert f"Error: the state is locked by pid {holder.pid} on " in r.stderr
        assert "(operation 'apply', started " in r.stderr
        # a plan without refresh only reads the state: it takes no lock (pull-request jobs, read-only credentials)
        assert mlctl("-C", str(proj.root), "plan", "--refresh=false", "--detailed-exitcode").returncode == 2
        waiting = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlctl.cli",
                "-C",
                str(proj.root),
                "plan",
                "--lock-timeout",
                "5m",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # a runner started in the background (`cmd &`) ignores SIGINT and its children
            # inherit that; a user's terminal does not, so restore the default here
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            lock = str(proj.data_dir / "state.lock")
            deadline = 600
            while deadline and not any(
                os.path.realpath(f"/proc/{waiting.pid}/fd/{fd}") == lock for fd in os.listdir(f"/proc/{waiting.pid}/fd")
            ):
                assert waiting.poll() is None, waiting.communicate()
                deadline -= 1
                time.sleep(0.1)  # bounded: at most 60 s until it waits on the lock
            waiting.send_signal(signal.SIGINT)
            out, err = waiting.communicate(timeout=60)
            assert (waiting.returncode, err.strip().splitlines()[-1]) == (130, "Interrupted.")
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    assert mlctl("-C", str(proj.root), "plan", "--refresh=false").returncode == 0


def test_new_content_under_the_same_model_version_is_refused(applied):
    (applied.root / "model" / "weights.txt").write_text("weights: retrained\n")
    r = mlctl("-C", str(applied.root), "plan", "--refresh=false")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[:3] == [
        "Error: model fraud:1 is already registered with other content",
        "  at model.yml:3, field 'version', model.fraud",
        "  registered versions are immutable: bump `version` (e.g. to a new number) or leave `version` out so "
        "mlctl derives it from the content.",
    ]
    assert r.stdout == ""


def test_refresh_only_reports_drift_and_not_config_changes(applied):
    root = str(applied.root)
    (applied.root / "blue.yml").write_text(
        (applied.root / "blue.yml").read_text().replace("instance_count: 1", "instance_count: 2")
    )
    r = mlctl("-C", root, "plan", "--refresh-only", "--detailed-exitcode")  # nothing runs: every host is gone
    assert r.returncode == 2, r.stderr
    assert r.stdout.startswith(
        "Objects have changed outside of mlctl (refresh-only: configuration changes are not shown)"
    )
    assert "instance_count = 1 -> 2" not in r.stdout and "# (reason: drift: it is gone from the runtime)" in r.stdout
    assert (
        r.stdout.splitlines()[-1]
        == "Drift: 10 resources changed outside of mlctl; `mlctl apply` restores what was applied."
    )
    bad = mlctl("-C", root, "plan", "--refresh-only", "--refresh=false")
    assert bad.returncode == 1 and "--refresh-only cannot be combined" in bad.stderr


def test_a_project_whose_yaml_was_deleted_plans_deleting_what_the_state_records(applied, tmp_path):
    root = str(applied.root)
    for f in applied.root.glob("*.yml"):
        f.unlink()
    for args in (["--destroy"], []):
        r = mlctl("-C", root, "plan", "--refresh=false", "--detailed-exitcode", *args)
        assert r.returncode == 2, r.stderr
        assert r.stdout.rstrip().splitlines()[-1] == "Plan: 0 to add, 0 to change, 0 to replace, 12 to destroy."
        assert r.stderr.startswith(
            f"Warning: no configuration found in {root}: planning with an empty "
            "configuration, so every resource the state records is deleted\n"
        )
    v = mlctl("-C", root, "validate")
    assert v.returncode == 0 and v.stdout == "Configuration is valid: 0 resources.\n"
    (applied.root / "blue.yml").write_text("name: blue\nendpoint_name: shop\ninstance_count: 1\n")  # no kind
    r = mlctl("-C", root, "plan", "--refresh=false")  # looks like ours: not read as an empty configuration
    assert r.returncode == 1 and r.stderr.startswith(
        f"Error: no configuration found in {root}; skipped blue.yml (it looks like a deployment: add "
        "'kind: deployment' or the Azure '$schema:' URL to read it)\n"
    ), r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = mlctl("-C", str(empty), "plan", "--refresh=false")  # nothing recorded either: an error
    assert r.returncode == 1 and r.stderr.startswith(f"Error: no configuration found in {empty}\n")


def test_json_and_markdown_say_why_on_stdout_when_no_plan_can_be_made(applied):
    root = str(applied.root)
    (applied.root / "model" / "weights.txt").write_text("weights: retrained\n")
    (applied.root / "endpoint.yml").write_text(
        (applied.root / "endpoint.yml").read_text().replace("blue: 90", "blue: 80")
    )
    j = mlctl("-C", root, "plan", "--refresh=false", "--json", "--detailed-exitcode")
    assert j.returncode == 1 and "Traceback" not in j.stderr
    doc = json.loads(j.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert (doc["valid"], doc["error_count"], doc["summary"]) == (
        False,
        1,
        {"has_changes": False, "text": "The plan failed with 1 error; nothing was planned."},
    )
    [d] = doc["diagnostics"]
    assert (d["summary"], d["file"], d["line"], d["field"]) == (
        "traffic of endpoint 'shop' totals 90%",
        "endpoint.yml",
        4,
        "traffic",
    )
    assert j.stderr.startswith("Error: traffic of endpoint 'shop' totals 90%")  # people still read stderr
    (applied.root / "endpoint.yml").write_text(
        (applied.root / "endpoint.yml").read_text().replace("blue: 80", "blue: 90")
    )
    m = mlctl("-C", root, "plan", "--refresh=false", "--markdown")
    assert m.returncode == 1
    assert m.stdout.splitlines()[:5] == [
        "### mlctl plan",
        "",
        "**The plan failed with 1 error; nothing was planned.**",
        "",
        "- **Error:** model fraud:1 is already registered with other content "
        "(<code>model.yml:3, field &#x27;version&#x27;, model.fraud</code>)",
    ]


def test_every_command_has_help_and_mlctl_help_imports_nothing_heavy():
    """`mlctl --help` stays fast by importing no subcommand and no heavy library (its start-up time is
    measured in bench/plan/run.py; no timed assertion here)."""
    from mlctl.cli import COMMANDS

    probe = (
        "import sys\nfrom mlctl.cli import main\nrc = main(['--help'])\n"
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in "
        "('yaml', 'jsonschema', 'rich', 'deepdiff', 'networkx', 'aiohttp') or m.startswith('mlctl.commands.')))"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines()[-1] == "0 []", r.stdout + r.stderr
    assert all(f"  {name} " in r.stdout for name in COMMANDS)
    for name in COMMANDS:
        h = mlctl(name, "--help")
        assert h.returncode == 0 and h.stdout.startswith(f"Usage: mlctl {name} ") and not h.stderr, (name, h.stderr)
    for sub in ("list", "show"):
        assert mlctl("state", sub, "--help").returncode == 0
