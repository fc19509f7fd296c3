"""`mlctl convert v1`: turn an SDK/CLI v1 deployment (inferenceconfig.json, deploymentconfig.json,
models) into current-form YAML in the project, then show the plan of it."""

from __future__ import annotations

import re
from pathlib import Path

import click

_ENDPOINT_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")


@click.group("convert")
def command():
    """Convert deployments written for other tools into mlctl's YAML (Azure ML online endpoints)."""


def _service(ctx, param, value: str) -> str:
    if not (3 <= len(value) <= 32 and _ENDPOINT_NAME.match(value)):
        raise click.BadParameter(
            f"'{value}' cannot name an endpoint: 3 to 32 letters, digits and '-', starting "
            "with a letter and not ending with '-'"
        )
    return value


@command.command("v1", short_help="A v1 web service (az ml model deploy --ic/--dc JSON) to endpoint YAML.")
@click.option(
    "--name",
    "service",
    required=True,
    callback=_service,
    metavar="SERVICE",
    help="The v1 service name (az ml model deploy -n): the endpoint's name.",
)
@click.option(
    "-m",
    "--model",
    "models",
    required=True,
    multiple=True,
    metavar="MODEL",
    help="A model file or folder (NAME=PATH names it), or NAME:VERSION of a model the project defines (repeatable).",
)
@click.option("--ic", "ic", required=True, metavar="FILE", help="The v1 inferenceconfig.json.")
@click.option("--dc", "dc", metavar="FILE", help="The v1 deploymentconfig.json (computeType local, aci or aks).")
@click.option("--out", "out", metavar="DIR", help="Write the YAML here (default: the project folder).")
@click.option(
    "--force", is_flag=True, help="Replace files a previous conversion wrote (default: refuse, write nothing)."
)
@click.pass_context
def v1(ctx, service, models, ic, dc, out, force):
    """Convert `az ml model deploy -n SERVICE -m MODEL --ic inferenceconfig.json --dc deploymentconfig.json`.

    Writes SERVICE-endpoint.yml, SERVICE-blue-deployment.yml (all traffic), SERVICE-environment.yml
    and SERVICE-model.yml (several -m: one SERVICE-models/ folder laid out NAME/VERSION/), each with a
    header listing the v1 fields not carried over and why; then prints the plan of the folder. Paths
    are relative to the project folder (-C). The field table: docs/migrate-v1.md.
    """
    from mlctl.commands.plan import print_plan
    from mlctl.convert.modelargs import resolve_models
    from mlctl.convert.v1build import convert, render
    from mlctl.convert.v1files import read_v1
    from mlctl.convert.v1output import check_output
    from mlctl.convert.writing import write_all
    from mlctl.errors import Diagnostic, MlctlError
    from mlctl.projectpaths import Project

    project = ctx.obj
    root = project.root
    v1_input = read_v1((root / ic).resolve(), (root / dc).resolve() if dc else None, root)
    found = resolve_models(models, project)
    target = (root / out).resolve() if out else root
    if target != root and any(m.registered for m in found) and len(found) == 1:
        raise MlctlError(
            Diagnostic(
                f"-m {found[0].given} names a model of the project, and --out {out} is another folder",
                "Convert into the project (leave --out out), or give the model's file or folder.",
                field="--out",
            )
        )
    conversion = convert(v1_input, found, service, target)
    check_output(conversion, v1_input)
    sources = " and ".join(f.shown for f in (v1_input.ic, v1_input.dc) if f is not None)
    if v1_input.compute:
        sources += f" (computeType {v1_input.compute})"
    written = write_all(target, render(conversion, sources), conversion.trees, force=force)
    shown = Path(out) if out else Path(".")
    for name in written:
        click.echo(f"Wrote {shown / name}{'/' if name in conversion.trees else ''}")
    click.echo()
    if target != root:  # the new files name the old ones beside them: the boundary stays the converted project's
        from dataclasses import replace

        from mlctl.boundary import project_boundary

        moved = Project.at(target, runtime_override=project.runtime_override)
        project = replace(moved, boundary=Path(project_boundary(root)))
    print_plan(project)
