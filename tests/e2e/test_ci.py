"""examples/ci: the pull-request workflow's plan step runs as written (no runtime needed)."""

import os
import subprocess
import sys
from pathlib import Path

import yaml
from e2e_support import REPO, mlctl


def run_step(workflow: str, job: str, name: str, env: dict, cwd: Path):
    doc = yaml.safe_load((REPO / "examples" / "ci" / workflow).read_text())
    step = next(s for s in doc["jobs"][job]["steps"] if s.get("name") == name)
    env = {**os.environ, **env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-e", "-c", step["run"]], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120, check=False)


def test_pull_request_plan_step(split_project, tmp_path):
    p, root = split_project, split_project.root
    p.write({"blue": 100}, {"blue": {}})
    out_file = tmp_path / "github_output"
    step = run_step("plan-comment.yml", "plan", "Plan", {"PROJECT": str(root), "GITHUB_OUTPUT": str(out_file)},
                    tmp_path)
    assert step.returncode == 0, step.stderr
    assert "exitcode=2" in out_file.read_text()
    markdown = (tmp_path / "plan.md").read_text()
    assert "deployment.split.blue" in markdown and "|" in markdown
    mlctl(root, "apply", "--auto-approve")
    out_file.unlink()
    step = run_step("plan-comment.yml", "plan", "Plan", {"PROJECT": str(root), "GITHUB_OUTPUT": str(out_file)},
                    tmp_path)
    assert step.returncode == 0 and "exitcode=0" in out_file.read_text()
