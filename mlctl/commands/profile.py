"""`mlctl profile ENDPOINT --deployment NAME --request-file F`: a bounded load through the endpoint at each
concurrency, its figures, and the deployment sizing they imply (mlctl.profiling does the work)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import click

from mlctl.errors import MlctlError


def ready_deployment(project, state, runtime, endpoint: str, deployment: str) -> dict:
    """The live status of `deployment` of `endpoint`; MlctlError unless it was applied and all its
    instances are ready now (a profile of a deployment still rolling out or degraded would mislead)."""
    applied = {
        rs.attributes.get("name"): rs
        for rs in state.resources.values()
        if rs.kind == "deployment" and rs.attributes.get("endpoint") == endpoint
    }
    if deployment not in applied:
        raise MlctlError(
            f"endpoint {endpoint!r} has no deployment {deployment!r}",
            detail="Its deployments: " + (", ".join(sorted(applied)) or "none applied yet") + ".",
        )
    if applied[deployment].status != "ready":
        raise MlctlError(
            f"deployment {deployment!r} of endpoint {endpoint!r} is not ready "
            f"({applied[deployment].status} at the last apply); profile refuses to run",
            detail="`mlctl show` says what runs; fix it and `mlctl apply` first.",
        )
    live = ((runtime.endpoint_status(project, endpoint) or {}).get("deployments") or {}).get(deployment)
    if live is None or live.get("state") != "ready":
        what = (
            "not running"
            if live is None
            else (
                f"{live.get('state')}, "
                f"{live.get('ready_instances', 0)}/{live.get('instance_count', '?')} instances ready"
            )
        )
        raise MlctlError(
            f"deployment {deployment!r} of endpoint {endpoint!r} is not ready ({what}); profile refuses to run",
            detail="`mlctl show` says what runs; `mlctl plan` shows the drift and `mlctl apply` repairs it.",
        )
    return live


def direct_url(base: str, attributes) -> str:
    """Pure: the scoring URL of `base` on the endpoint host's own address (mlctl.endpointurls.reach_address)."""
    from mlctl.endpointurls import reach_address, url_host

    parts = urlsplit(base)
    return f"{parts.scheme}://{url_host(reach_address(attributes))}:{parts.port or 443}/score"


@click.command()
@click.argument("endpoint")
@click.option(
    "--deployment", required=True, metavar="NAME", help="The deployment to load (azureml-model-deployment header)."
)
@click.option(
    "--request-file",
    required=True,
    metavar="F",
    help="The request body (JSON) each request sends; a relative path is read from the project (-C DIR).",
)
@click.option(
    "--concurrency",
    "concurrency_text",
    default="1,4,16",
    show_default=True,
    metavar="LIST",
    help="Requests in flight at each step (closed loop), comma-separated.",
)
@click.option(
    "--duration",
    "duration_text",
    default="20s",
    show_default=True,
    metavar="TIME",
    help="How long each step runs (e.g. 20s, 500ms, 1m; at most 120s).",
)
@click.option(
    "--max-requests",
    default=None,
    type=int,
    metavar="N",
    help="Stop a step after N requests (at most 100000, the default).",
)
@click.option("--target-rps", type=float, default=None, metavar="N", help="Size for this many requests per second.")
@click.option("--target-p99-ms", type=float, default=None, metavar="N", help="Size within this p99 latency.")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as one JSON document (mlctl.profile/v1).")
@click.option(
    "--plot",
    "plot_path",
    default=None,
    metavar="FILE.png",
    help="Draw throughput and p99 against concurrency (needs the plot extra: matplotlib).",
)
@click.pass_obj
def command(
    project,
    endpoint,
    deployment,
    request_file,
    concurrency_text,
    duration_text,
    max_requests,
    target_rps,
    target_p99_ms,
    as_json,
    plot_path,
):
    """Load ENDPOINT's deployment at each concurrency and recommend its sizing (exit 1 when nothing answered)."""
    import json

    from rich.console import Console

    from mlctl.commands.invoke import read_request_file, verifying_context
    from mlctl.commands.show import auth_mode_of, endpoint_state
    from mlctl.profiling import chart, load, settings
    from mlctl.profiling.figures import summarize
    from mlctl.profiling.recommendation import recommend
    from mlctl.profiling.render import Profile, document, print_profile
    from mlctl.reconciler.operations import runtime_of

    levels = settings.parse_concurrency(concurrency_text)
    duration = settings.parse_duration(duration_text)
    max_requests = load.MAX_REQUESTS if max_requests is None else max_requests
    settings.check_bounds(max_requests, target_rps, target_p99_ms)
    if plot_path:
        chart.check_plotting()
    body = read_request_file(project, request_file)

    state, rs = endpoint_state(project, endpoint)
    runtime = runtime_of(project, rs)
    ready_deployment(project, state, runtime, endpoint, deployment)
    base = runtime.endpoint_url(project, endpoint, rs.attributes)
    if base is None:
        raise MlctlError(
            f"the endpoint host of {endpoint!r} is not running",
            detail="`mlctl plan` shows the drift; `mlctl apply` restarts it.",
        )

    url, tls = f"{base}/score", {}
    if base.startswith("https://"):  # the host's own address, the certificate verified for the URI's name
        url, tls = (
            direct_url(base, rs.attributes),
            {
                "ssl": verifying_context(project, rs, None),
                "server_hostname": urlsplit(base).hostname,
            },
        )

    def target() -> load.Target:  # asked again at each step: an aml_token expires
        return load.Target(
            url,
            {
                "Content-Type": "application/json",
                "azureml-model-deployment": deployment,
                "Authorization": runtime.authorization(project, endpoint, auth_mode_of(rs)),
            },
            body,
            **tls,
        )

    status, answer = load.probe(target())
    if status != 200:
        raise MlctlError(
            f"deployment {deployment!r} answered the request in {request_file} with HTTP {status}: "
            f"{answer[:300].decode('utf-8', 'replace')}",
            detail="Profile sends the request file as it is: `mlctl invoke` shows the same answer.",
        )
    say = Console(stderr=True, highlight=False)
    steps = []
    for c in levels:
        say.print(f"{endpoint}/{deployment}: concurrency {c} for {duration:g}s ...", markup=False)
        before, t0 = runtime.usage(project, endpoint, deployment), time.monotonic()
        samples = load.run_step(target(), c, duration, max_requests)
        after, t1 = runtime.usage(project, endpoint, deployment), time.monotonic()
        steps.append(summarize(samples, before, after, t1 - t0))
    profile = Profile(
        endpoint,
        deployment,
        runtime.name,
        duration,
        max_requests,
        target_rps,
        target_p99_ms,
        steps,
        recommend(steps, target_rps, target_p99_ms),
    )
    if as_json:
        click.echo(json.dumps(document(profile), indent=2))
    else:
        print_profile(profile, Console(highlight=False))
    if plot_path:
        chart.plot(profile, Path(plot_path))
        say.print(f"Wrote {plot_path}", markup=False)
    if profile.recommendation is None:
        sys.exit(1)
