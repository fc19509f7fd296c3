"""`mlctl keys ENDPOINT [--regenerate primary|secondary] [--json]`: the one command that prints keys."""

from __future__ import annotations

import json
import time

import click


@click.command()
@click.argument("endpoint")
@click.option(
    "--regenerate",
    type=click.Choice(["primary", "secondary"]),
    default=None,
    help="Replace this key (the endpoint host takes it at once; the old one stops working).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON ({primaryKey, secondaryKey} or {accessToken, ...}).")
@click.pass_obj
def command(project, endpoint, regenerate, as_json):
    """Print ENDPOINT's keys (auth_mode key) or a fresh token with its expiry (auth_mode aml_token)."""
    from mlctl.commands.show import auth_mode_of, endpoint_state
    from mlctl.reconciler.operations import runtime_of

    _, rs = endpoint_state(project, endpoint)
    mode = auth_mode_of(rs)
    runtime = runtime_of(project, rs)
    keys = runtime.keys(project, endpoint)
    if regenerate:
        runtime.regenerate_key(project, endpoint, regenerate)
        click.echo(f"Regenerated the {regenerate} key of {endpoint}.", err=True)
        keys = runtime.keys(project, endpoint)
    if mode == "aml_token":
        token, expiry = runtime.issue_token(project, endpoint)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))
        if as_json:
            click.echo(json.dumps({"accessToken": token, "expiryTimeUtc": int(expiry), "tokenType": "Bearer"}))
        else:
            click.echo(f"token: {token}\nexpires: {expires}")
        return
    if as_json:
        click.echo(json.dumps({"primaryKey": keys["primary"], "secondaryKey": keys["secondary"]}))
    else:
        click.echo(f"primary: {keys['primary']}\nsecondary: {keys['secondary']}")
