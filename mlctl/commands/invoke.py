"""`mlctl invoke ENDPOINT --request-file FILE [--deployment NAME]`: score a request through the endpoint."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import sys
import urllib.parse

import click

from mlctl.errors import MlctlError


def read_request_file(project, request_file: str) -> bytes:
    """The request body: `request_file` under the project (-C DIR), else as given; MlctlError when unreadable."""
    path = project.root / request_file
    if not path.is_file() and os.path.isfile(request_file):
        path = request_file
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise MlctlError(
            f"cannot read the request file {request_file}: {e.strerror}",
            detail=f"looked in {project.root} (the project, -C DIR)",
        ) from None


@click.command()
@click.argument("endpoint")
@click.option(
    "--request-file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The request body (JSON) to send; a relative path is read from the project (-C DIR).",
)
@click.option(
    "--deployment",
    default=None,
    metavar="NAME",
    help="Send to this deployment (azureml-model-deployment header), bypassing the traffic weights.",
)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the answer.")
@click.option(
    "--cacert",
    default=None,
    type=click.Path(dir_okay=False),
    help="Verify the endpoint's certificate with this CA file (PEM) instead of the project's CA (tls: self-signed) "
    "or the system's store.",
)
@click.option(
    "--cert",
    "client_cert",
    default=None,
    type=click.Path(dir_okay=False),
    help="A client certificate and its key (one PEM file) for an endpoint with listen.client_ca (mutual TLS).",
)
@click.pass_obj
def command(project, endpoint, request_file, deployment, timeout, cacert, client_cert):
    """Send a scoring request to ENDPOINT and print the answer (exit 1 on an HTTP error)."""
    from mlctl.commands.show import auth_mode_of, endpoint_state
    from mlctl.reconciler.operations import runtime_of

    _, rs = endpoint_state(project, endpoint)
    runtime = runtime_of(project, rs)
    served = rs.attributes if (rs.attributes.get("listen") or {}).get("tls", "off") != "off" else {}
    base = runtime.endpoint_url(project, endpoint, served and rs.attributes)  # plain HTTP: the host itself
    if base is None:
        raise MlctlError(
            f"the endpoint host of {endpoint!r} is not running",
            detail="`mlctl plan` shows the drift; `mlctl apply` restarts it.",
        )
    body = read_request_file(project, request_file)
    headers = {
        "Content-Type": "application/json",
        "Authorization": runtime.authorization(project, endpoint, auth_mode_of(rs)),
    }
    if deployment:
        headers["azureml-model-deployment"] = deployment
    context = verifying_context(project, rs, cacert, client_cert) if base.startswith("https://") else None
    try:
        status, reason, text = send(
            base, runtime.endpoint_address(project, endpoint, rs.attributes), body, headers, timeout, context
        )
    except (OSError, http.client.HTTPException) as e:
        detail = ""
        if isinstance(e, ssl.SSLCertVerificationError):
            detail = (
                "The endpoint's certificate is not one this client trusts for that name. Give the CA that "
                "signed it with --cacert FILE, or set listen.public_name to a name the certificate carries."
            )
        elif isinstance(e, (ssl.SSLError, ConnectionResetError)) and (rs.attributes.get("listen") or {}).get(
            "mutual_tls"
        ):
            detail = "The endpoint asks for a client certificate (listen.client_ca): give yours with --cert FILE."
        raise MlctlError(f"cannot reach endpoint {endpoint!r}: {e}", detail=detail) from None
    if status >= 400:
        click.echo(f"HTTP {status} {reason}: {text}", err=True)
        sys.exit(1)
    click.echo(text)


def send(base: str, address: str, body: bytes, headers: dict, timeout: float, context) -> tuple[int, str, str]:
    """POST `body` to `base`/score: (status, reason, text). The connection goes to `address` (this machine's
    way to the endpoint host); with TLS the certificate is verified for the URL's host name (`context`)."""
    url = urllib.parse.urlsplit(base)
    port = url.port or (443 if url.scheme == "https" else 80)
    sock = socket.create_connection((address, port), timeout=timeout)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname=url.hostname)
    conn = http.client.HTTPConnection(url.hostname or address, port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request("POST", "/score", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.reason, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def verifying_context(project, rs, cacert: str | None, client_cert: str | None = None) -> ssl.SSLContext:
    """A client TLS context that verifies the endpoint's certificate and name: with `cacert` when given,
    else the project's CA for `tls: self-signed`, else the system's store; presenting `client_cert` (a PEM
    file holding a certificate and its key) when given."""
    from mlctl.selfsigned import trusted_ca

    cafile = cacert or trusted_ca(rs.attributes, project.data_dir)
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as e:
        raise MlctlError(
            f"cannot use {cafile} as a CA file: {getattr(e, 'strerror', None) or e}",
            detail="Give a PEM file of CA certificates with --cacert.",
        ) from None
    if client_cert:
        try:
            context.load_cert_chain(client_cert)
        except (OSError, ssl.SSLError) as e:
            raise MlctlError(
                f"cannot use {client_cert} as a client certificate: {getattr(e, 'strerror', None) or e}",
                detail="Give one PEM file holding the client certificate and its private key with --cert.",
            ) from None
    return context
