"""`mlctl keys ENDPOINT [--regenerate primary|secondary] [--json]`: the one command that prints keys."""

from __future__ import annotations

import json
import time

import click


@click.command()
@click.argument("endpoint")
@click.option("--regenerate", type=click.Choice(["primary", "secondary"]), default=None,
              help="Replace this key (the endpoint host takes it at once; the old one stops working).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON ({primaryKey, secondaryKey} or {accessToken, ...}).")
@click.pass_obj
def command(project, endpoint, regenerate, as_json):
    """Print ENDPOINT's keys (auth_mode key) or a fresh token with its expiry (auth_mode aml_token)."""
    from mlctl.commands.show import endpoint_state
    from mlctl.errors import MlctlError
    from mlctl.runtime.host import secrets
    from mlctl.runtime.host.client import HostClient, HostError, find_host

    _, rs = endpoint_state(project, endpoint)
    mode = rs.attributes.get("auth_mode", "key")
    if not secrets.secrets_path(project.data_dir, endpoint).exists():
        raise MlctlError(f"endpoint {endpoint!r} has no keys yet", detail="Run `mlctl apply` to create them.")
    if regenerate:
        secrets.regenerate_key(project.data_dir, endpoint, regenerate)
        info = find_host(project.data_dir, endpoint)
        try:
            if info is not None:
                HostClient(info).reload_keys()
        except HostError as e:
            raise MlctlError(f"the {regenerate} key of {endpoint} was regenerated and saved, but its endpoint "
                             f"host (pid {info.pid}) did not take it: {e.message}",
                             detail=f"`mlctl keys {endpoint}` prints the new key; until the host takes it, it "
                                    f"may still accept the old one. Do not regenerate again: stop the host "
                                    f"(`kill {info.pid}`; it stops its instances) and run `mlctl apply`, which "
                                    f"starts it again on the same port with the saved keys.") from None
        click.echo(f"Regenerated the {regenerate} key of {endpoint}.", err=True)
    if mode == "aml_token":
        token, expiry = secrets.issue_token(project.data_dir, endpoint)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))
        if as_json:
            click.echo(json.dumps({"accessToken": token, "expiryTimeUtc": int(expiry), "tokenType": "Bearer"}))
        else:
            click.echo(f"token: {token}\nexpires: {expires}")
        return
    keys = secrets.read_keys(project.data_dir, endpoint)
    if as_json:
        click.echo(json.dumps({"primaryKey": keys["primary"], "secondaryKey": keys["secondary"]}))
    else:
        click.echo(f"primary: {keys['primary']}\nsecondary: {keys['secondary']}")
