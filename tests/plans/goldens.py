"""Helpers of the golden-plan tests: copy a project, write the prior state, plan, render, compare."""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

from rich.console import Console

from mlctl.projectpaths import Project
from mlctl.reconciler.plans import plan
from mlctl.reconciler.render_json import render_json
from mlctl.reconciler.render_markdown import render_markdown
from mlctl.reconciler.render_text import render_text
from mlctl.observed import observed_of
from mlctl.schemas.load import load_config
from mlctl.state.statefile import ResourceState, State, read_state

HERE = Path(__file__).parent
PLACEHOLDER = "$PROJECT"
LINEAGE = "6f1d2c3b-0a4e-4c5d-8e7f-112233445566"


def state_from_resources(resources, serial: int = 7, **by_address) -> State:
    """The state apply writes after applying `resources` successfully (status ready, observed empty);
    `by_address` overrides fields of some entries: {"deployment.e.blue": {"status": "failed"}}."""
    state = State(serial=serial, lineage=LINEAGE)
    for r in resources:
        rs = ResourceState.from_resource(r)
        for key, value in by_address.get(str(r.address), {}).items():
            setattr(rs, key, observed_of(r.kind, value) if key == "observed" else value)
        state.resources[r.address] = rs
    return state


def copy_project(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".mlctl", "__pycache__"))
    return dst


def project(root: Path, files=()) -> Project:
    return Project.at(root, files=files)


def loaded(proj: Project):
    config = load_config(proj)
    assert not config.has_errors(), [d.format() for d in config.errors]
    return config


def portable_state(state: State, root: Path) -> str:
    return json.dumps(state.to_json(), indent=2).replace(str(root), PLACEHOLDER) + "\n"


def install_state(text: str, proj: Project) -> State:
    proj.ensure_data_dir()
    proj.state_path.write_text(text.replace(PLACEHOLDER, str(proj.root)))
    return read_state(proj.state_path)


def render_all(p, root: Path) -> dict[str, str]:
    buf = StringIO()
    render_text(p, Console(file=buf, width=100, color_system=None), str(root))
    return {
        "plan.txt": buf.getvalue(),
        "plan.json": render_json(p, str(root)),
        "plan.md": render_markdown(p, str(root)),
    }


def check_or_update(case_dir: Path, outputs: dict[str, str], update: bool) -> None:
    for name, text in outputs.items():
        path = case_dir / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.read_text() == text, f"{path} differs; rerun with --update-goldens if the change is intended"


def plan_case(proj: Project, prior: State, **options):
    return plan(loaded(proj), prior, None, **options)
