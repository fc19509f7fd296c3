"""Helpers of the golden-plan tests: copy a project, write the prior state, plan, render, compare."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


def two_branches(root: Path, edit) -> list[str]:
    """Make `root` a git repository whose `main` holds it as it is and whose `other` (checked out) holds it after
    `edit(root)`; returns the git command line to switch between them."""
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    subprocess.run([*git, "checkout", "-qb", "other"], check=True)
    edit(root)
    subprocess.run([*git, "commit", "-qam", "two"], check=True)
    return git


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


TLS_PROJECT_FILE = (
    "listen:\n  address: 0.0.0.0\n  public_name: shop.example.test\n"
    "  tls:\n    certificate: tls/cert.pem\n    key: tls/key.pem\n"
)


def write_certificate(root: Path, seed: int) -> None:
    """`mlctl.yaml` listening on 0.0.0.0 with TLS from tls/cert.pem and tls/key.pem (0600): a certificate that is
    the same on every run (Ed25519, whose signatures are deterministic, from a key made of `seed`; fixed dates
    and serial), so its digest can stand in a golden plan. A new `seed` is a renewed certificate."""
    import datetime
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.x509.oid import NameOID

    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1000 + seed)
        .not_valid_before(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
        .not_valid_after(datetime.datetime(2099, 1, seed, tzinfo=datetime.timezone.utc))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("shop.example.test")]), critical=False)
        .sign(key, None)
    )
    (root / "mlctl.yaml").write_text(TLS_PROJECT_FILE)
    (root / "tls").mkdir(exist_ok=True)
    (root / "tls" / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(root / "tls" / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def cli(root: Path, xdg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real CLI on the project `root`, its caches (and key) under `xdg` (XDG_CACHE_HOME)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(xdg)}
    return subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
