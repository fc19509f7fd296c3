"""`mlctl validate`: check the configuration; exit 0 when valid, 1 otherwise."""

from __future__ import annotations

import json

import click

from mlctl.commands.plan import override_options, with_overrides
from mlctl.errors import Diagnostic


@click.command("validate")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@override_options
@click.pass_context
def command(ctx, as_json: bool, sets, variables) -> None:
    """Check the configuration: every file, field, reference and traffic rule; all problems at once."""
    from mlctl.schemas.load import load_config

    config = load_config(with_overrides(ctx.obj, sets, variables))
    errors = len(config.errors)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "valid": errors == 0,
                    "error_count": errors,
                    "warning_count": sum(d.severity == "warning" for d in config.diagnostics),
                    "diagnostics": [
                        {
                            k: getattr(d, k)
                            for k in ("severity", "summary", "detail", "file", "line", "field", "address")
                        }
                        for d in config.diagnostics
                    ],
                    "resources": [str(r.address) for r in config.resources],
                    "ignored": {a: list(f) for a, f in config.ignored.items()},
                    "runtime": (
                        {"name": config.project_settings.runtime, "source": config.project_settings.source}
                        if config.project_settings
                        else None
                    ),
                },
                indent=2,
            )
        )
        ctx.exit(1 if errors else 0)
    for d in config.diagnostics:
        click.echo(d.format(), err=True)
    if errors:
        click.echo(f"Configuration is invalid: {errors} error{'s' if errors != 1 else ''}.", err=True)
        ctx.exit(1)
    for address, fields in config.ignored.items():
        click.echo(
            Diagnostic(
                f"{address}: ignored (cloud-only, not used by mlctl): {', '.join(fields)}", severity="note"
            ).format(),
            err=True,
        )
    click.echo(f"Configuration is valid: {len(config.resources)} resources.")
