"""examples/ci: the pull-request workflow's steps run as written: state fetch, plan (no runtime needed),
and the comment script (under node, against an in-memory pull request)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from e2e_support import REPO, mlctl


def run_step(workflow: str, job: str, name: str, env: dict, cwd: Path):
    doc = yaml.safe_load((REPO / "examples" / "ci" / workflow).read_text())
    step = next(s for s in doc["jobs"][job]["steps"] if s.get("name") == name)
    env = {**os.environ, **env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]], capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False
    )


def test_pull_request_plan_step(split_project, tmp_path):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    out_file = tmp_path / "github_output"
    step = run_step(
        "plan-comment.yml", "plan", "Plan", {"PROJECT": str(root), "GITHUB_OUTPUT": str(out_file)}, tmp_path
    )
    assert step.returncode == 0, step.stderr
    assert "exitcode=2" in out_file.read_text()
    markdown = (tmp_path / "plan.md").read_text()
    assert "deployment.split.blue" in markdown and "|" in markdown
    mlctl(root, "apply", "--auto-approve")
    out_file.unlink()
    step = run_step(
        "plan-comment.yml", "plan", "Plan", {"PROJECT": str(root), "GITHUB_OUTPUT": str(out_file)}, tmp_path
    )
    assert step.returncode == 0 and "exitcode=0" in out_file.read_text()


def test_pull_request_state_fetch_step(tmp_path):
    """Without a published state the fetch step leaves none (never an empty file); with one it copies it."""
    sp = subprocess
    origin, work = tmp_path / "origin", tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    sp.run([*git, "init", "-q", str(origin)], check=True)
    sp.run([*git, "-C", str(origin), "commit", "-q", "--allow-empty", "-m", "init"], check=True)
    sp.run([*git, "clone", "-q", str(origin), str(work)], check=True)
    step = run_step("plan-comment.yml", "plan", "Fetch the recorded state", {"PROJECT": "deploy"}, work)
    assert step.returncode == 0 and "No recorded state" in step.stdout, step.stderr
    assert not (work / "deploy" / ".mlctl" / "state.json").exists()
    sp.run([*git, "-C", str(origin), "checkout", "-q", "-b", "mlctl-state"], check=True)
    (origin / "state.json").write_text('{"format_version": 1}\n')
    sp.run([*git, "-C", str(origin), "add", "state.json"], check=True)
    sp.run([*git, "-C", str(origin), "commit", "-q", "-m", "state"], check=True)
    step = run_step("plan-comment.yml", "plan", "Fetch the recorded state", {"PROJECT": "deploy"}, work)
    assert step.returncode == 0, step.stderr
    assert (work / "deploy" / ".mlctl" / "state.json").read_text() == '{"format_version": 1}\n'


def test_pull_request_state_fetch_step_leaves_a_blob_state_to_the_plan(tmp_path):
    """With the state in Azure Blob Storage the fetch step fetches nothing: the plan reads the blob."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "mlctl.yaml").write_text("state:\n  backend: azure_blob\n  container: c\n")
    step = run_step("plan-comment.yml", "plan", "Fetch the recorded state", {"PROJECT": "deploy"}, tmp_path)
    assert step.returncode == 0 and "the plan reads it with the read-only SAS" in step.stdout, step.stderr
    assert not (tmp_path / "deploy" / ".mlctl").exists()


FAKE_GITHUB = """
const fs = require('fs');
const store = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));   // the PR's comments, kept between runs
const rest = {issues: {
  listComments: 'listComments',
  createComment: async ({body}) => { store.push({id: store.length + 1, body}); },
  updateComment: async ({comment_id, body}) => { store.find(c => c.id === comment_id).body = body; },
}};
const github = {rest, paginate: async (what, args) => store.map(c => ({...c}))};
const context = {repo: {owner: 'o', repo: 'r'}, issue: {number: 7}};
(async () => { %s
  fs.writeFileSync(process.argv[2], JSON.stringify(store)); })();
"""


def test_pull_request_comment_step_updates_one_comment(tmp_path):
    """The github-script step as written, run by node against an in-memory PR: it creates the plan
    comment once and then updates that same comment; other comments are left alone."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    doc = yaml.safe_load((REPO / "examples" / "ci" / "plan-comment.yml").read_text())
    step = next(s for s in doc["jobs"]["plan"]["steps"] if s.get("name") == "Post or update the plan comment")
    (tmp_path / "run.js").write_text(FAKE_GITHUB % step["with"]["script"])
    comments = tmp_path / "comments.json"
    comments.write_text('[{"id": 1, "body": "LGTM"}]')
    for plan in ("Plan: 1 to add", "Plan: 2 to add", "No changes."):
        (tmp_path / "plan.md").write_text(plan + "\n")
        subprocess.run([node, "run.js", str(comments)], cwd=tmp_path, check=True, timeout=60)
    stored = json.loads(comments.read_text())
    assert [c["body"] for c in stored] == ["LGTM", "<!-- mlctl-plan -->\nNo changes.\n"]
