"""Errors of apply and keys as a user meets them (the real CLI in a subprocess, real endpoint hosts).

- apply with a config error and a broken state file names both in one run (as plan) and changes nothing;
- `keys --regenerate` against a host that does not answer (SIGSTOPped) fails within the reload
  timeout, says the key WAS regenerated and how to make the host take it; following that advice works.
  (Whether the resumed host then handles the order still queued on its socket is left open, as the
  message leaves it: "may still accept the old one".)
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from e2e_support import Endpoint, alive, keys, mlctl, wait_until

from mlctl.runtime.host.client import RELOAD_KEYS_S


# written by every config load (plan and validate too): the file digest cache, the document cache
# (mlctl/schemas/doccache.py) and the data folder's .gitignore
LOAD_CACHES = {".mlctl/hashcache.json", ".mlctl/documents.json", ".mlctl/.gitignore"}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes) but the caches a config load writes."""
    files = {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}
    return {name: p.read_bytes() for name, p in files.items() if name not in LOAD_CACHES}


def test_apply_reports_a_config_error_and_a_broken_state_together_and_changes_nothing(split_project):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    blue = root / "deploy-blue.yml"
    lines = blue.read_text().splitlines()
    blue.write_text("\n".join(lines) + "\ninstance_cout: 2\n")  # a typo, on the last line
    state = root / ".mlctl" / "state.json"
    state.parent.mkdir()
    state.write_text('{"version": 1, "resources": {"endpoint.split": {"kind": "endp')  # cut short
    before = snapshot(root)

    for args in (["apply", "--auto-approve"], ["apply"], ["destroy", "--auto-approve"]):
        r = mlctl(root, *args, check=False)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == "", (args, r.stdout, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 2, (args, r.stderr)
        assert errors[0] == "Error: unknown field 'instance_cout'", r.stderr
        assert f"deploy-blue.yml:{len(lines) + 1}, field 'instance_cout'" in r.stderr, r.stderr
        assert errors[1].startswith("Error: cannot read the state file: invalid JSON at line 1"), r.stderr
        assert str(state) in r.stderr, r.stderr
        after_state = r.stderr.split(errors[1], 1)[1]
        assert after_state.strip(), f"the state error does not say what to do:\n{r.stderr}"
        assert snapshot(root) == before, args  # no state write, no lock file, no backup

    plan = mlctl(root, "plan", check=False)  # the same diagnostics as plan's
    assert plan.returncode == 1 and plan.stderr == r.stderr

    blue.write_text("\n".join(lines) + "\n")  # the YAML fixed: the state error alone remains
    r = mlctl(root, "apply", "--auto-approve", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("Error:")] == [errors[1]]
    assert state.read_bytes() == before[".mlctl/state.json"]


@pytest.fixture
def stopped_hosts():
    """PIDs a test SIGSTOPs: each is SIGCONTed at the end (before the project is destroyed)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGCONT)


def test_regenerate_against_a_host_that_does_not_answer(split_project, stopped_hosts):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    mlctl(root, "apply", "--auto-approve")
    old = keys(root, "split")
    pid = json.loads(mlctl(root, "show", "split", "--json").stdout)["host"]["pid"]
    stopped_hosts.append(pid)
    os.kill(pid, signal.SIGSTOP)  # alive, its admin socket accepts, but nothing answers
    try:
        # bounded by the reload timeout (a hang would hit the subprocess timeout instead)
        r = mlctl(root, "keys", "split", "--regenerate", "primary", check=False, timeout=RELOAD_KEYS_S + 25)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith(
        f"Error: the primary key of split was regenerated and saved, but its endpoint host "
        f"(pid {pid}) did not take it: cannot reach the endpoint host at "
    ), r.stderr
    assert "timed out" in first, r.stderr
    assert f"`kill {pid}`" in r.stderr and "`mlctl apply`" in r.stderr and "Do not regenerate again" in r.stderr

    fresh = keys(root, "split")  # the new key is saved and shown
    assert fresh["primaryKey"] != old["primaryKey"] and fresh["secondaryKey"] == old["secondaryKey"]
    os.kill(pid, signal.SIGTERM)  # the advice: stop the host, then apply
    assert wait_until(lambda: not alive(pid), timeout=60), f"host {pid} did not stop on SIGTERM"
    out = mlctl(root, "apply", "--auto-approve")
    assert "Apply complete!" in out.stdout
    ep = Endpoint(root, "split")
    try:
        assert ep.score(key=fresh["primaryKey"])[0] == 200
        assert ep.score(key=old["primaryKey"])[0] == 401
        assert ep.score(key=fresh["secondaryKey"])[0] == 200
    finally:
        ep.close()
    assert keys(root, "split") == fresh
