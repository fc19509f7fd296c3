"""Secrets are masked by value, not only by name, in every view of a plan and of the state (text,
--json, --markdown, `state show`): a URL's credentials and token-shaped strings, whatever the
variable is called. A conda file's pip index is accepted with `${VAR}` credentials only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from goldens import HERE, copy_project

SECRETS = ("hunter2", "ghp_0123456789abcdefghijABCDEFGHIJ012345", "AKIAABCDEFGHIJKLMNOP")


def mlctl(*args):
    return subprocess.run([sys.executable, "-m", "mlctl.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def repo(tmp_path):
    root = copy_project(HERE / "_project", tmp_path / "project")
    blue = root / "blue.yml"
    blue.write_text(
        blue.read_text() + "environment_variables:\n"
        "  DATABASE_URL: postgres://app:hunter2@db.internal/shop\n"
        "  GH: ghp_0123456789abcdefghijABCDEFGHIJ012345\n"
        "  UPSTREAM: AKIAABCDEFGHIJKLMNOP\n"
        "  LOG_LEVEL: debug\n"
    )
    conda = root / "environment" / "conda.yml"
    conda.write_text(
        conda.read_text() + "      - --extra-index-url https://${FEED_USER}:${FEED_TOKEN}@pkgs.example.com/simple/\n"
    )
    return root


@pytest.mark.parametrize("view", [[], ["--json"], ["--markdown"]])
def test_a_plan_masks_secrets_by_value(repo, view):
    r = mlctl("-C", str(repo), "plan", "--refresh=false", *view)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert not [s for s in SECRETS if s in out], out
    assert "postgres://app:***@db.internal/shop" in out
    assert "(sensitive)" in out and "debug" in out
    assert "https://${FEED_USER}:${FEED_TOKEN}@pkgs.example.com/simple/" in out  # a reference is no secret
    if view == ["--json"]:
        json.loads(out)


def test_state_show_masks_secrets_by_value(repo, tmp_path):
    """What apply would record holds the values (apply needs them); what is shown of it does not."""
    from goldens import loaded, portable_state, project, state_from_resources

    (repo / ".mlctl").mkdir()
    (repo / ".mlctl" / "state.json").write_text(
        portable_state(state_from_resources(loaded(project(repo)).resources), repo).replace("$PROJECT", str(repo))
    )
    r = mlctl("-C", str(repo), "state", "show", "deployment.shop.blue")
    assert r.returncode == 0, r.stderr
    assert not [s for s in SECRETS if s in r.stdout] and "postgres://app:***@db.internal" in r.stdout, r.stdout
