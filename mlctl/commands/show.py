"""`mlctl show ENDPOINT [--json]`: an endpoint as it runs: URIs, state, traffic, deployments, instances."""

from __future__ import annotations

import json

import click

from mlctl import runtimerecords, scalesettings
from mlctl.errors import MlctlError


def recorded_endpoints(state) -> dict:
    return {rs.attributes.get("name", a.name): rs for a, rs in state.resources.items() if rs.kind == "endpoint"}


def endpoint_state(project, name: str):
    """(state, ResourceState of endpoint `name`); MlctlError naming the known endpoints otherwise.
    An endpoint is operated through the runtime that made it: a --runtime that names another says so."""
    from mlctl.state.backends import state_backend
    from mlctl.state.location import check_here
    from mlctl.state.statefile import read_state

    state = read_state(state_backend(project))
    check_here(project, state)
    known = recorded_endpoints(state)
    if name not in known:
        raise MlctlError(
            f"no endpoint {name!r} has been applied in this project",
            detail=("Known endpoints: " + ", ".join(sorted(known)))
            if known
            else "Nothing is applied yet: run `mlctl apply`.",
        )
    made_by = known[name].runtime
    if project.runtime_override and project.runtime_override != made_by:
        click.echo(
            f"Note: --runtime {project.runtime_override} is for plan and apply; endpoint {name!r} is run by "
            f"the {made_by} runtime that made it.",
            err=True,
        )
    return state, known[name]


def auth_mode_of(rs) -> str:
    """The endpoint's recorded auth_mode (the schema's default for a state that predates the field)."""
    if rs.attributes.get("auth_mode"):
        return rs.attributes["auth_mode"]
    from mlctl.schemas.validate import schema_default

    return schema_default("endpoint", "auth_mode")


def report(project, state, name: str) -> dict:
    """What `show` prints, from the state and the live endpoint host (Azure's field names)."""
    from mlctl.reconciler.operations import runtime_of

    rs = recorded_endpoints(state)[name]
    runtime = runtime_of(project, rs)
    status = runtime.endpoint_status(project, name)
    base = runtime.endpoint_url(project, name, rs.attributes) if status is not None else None
    deployments = {}
    for a, d in sorted(state.resources.items()):
        if d.kind != "deployment" or d.attributes.get("endpoint") != name:
            continue
        live = (status or {}).get("deployments", {}).get(d.attributes["name"])
        deployments[d.attributes["name"]] = {
            "status": d.status,
            "state": live.get("state") if live else "not running",
            "model": f"{d.attributes.get('model')}:{d.attributes.get('model_version')}",
            "environment": d.attributes.get("environment") or f"({runtime.without_environment})",
            "instance_count": live["instance_count"]
            if live and scalesettings.is_autoscaled(d.attributes)
            else d.attributes.get("instance_count"),
            "ready_instances": live.get("ready_instances", 0) if live else 0,
            **(
                {"autoscale": autoscale_report(d.attributes, live)} if scalesettings.is_autoscaled(d.attributes) else {}
            ),
            "instances": [instance_report(i) for i in (live.get("instances", []) if live else [])],
        }
    pending = state.pending and str(state.pending.get("address", "")).split(".")[-1] in (name, *deployments)
    failed = rs.status != "ready" or any(d["status"] != "ready" for d in deployments.values())
    provisioning = "Updating" if pending else "Failed" if failed or status is None else "Succeeded"
    return {
        "name": name,
        "auth_mode": rs.attributes.get("auth_mode"),
        "scoring_uri": f"{base}/score" if base else None,
        "openapi_uri": f"{base}/swagger.json" if base else None,
        "provisioning_state": provisioning,
        "runtime": runtime.name,
        **tls_report(project, rs.attributes),
        "host": {
            "alive": status is not None,
            "pid": (status or {}).get("pid"),
            "port": (status or {}).get("port") or rs.observed.port,
            **({"hosts": status["hosts"]} if status and "hosts" in status else {}),  # in-cluster hosts (ray)
        },
        "traffic": (status or {}).get("traffic", {}),
        "mirror_traffic": (status or {}).get("mirror_traffic", {}),
        "deployments": deployments,
    }


def tls_report(project, attributes) -> dict:
    """What `show` says of an endpoint's listen settings (nothing for loopback and plain HTTP): the address, the
    TLS mode, the certificate's expiry, and the CA file clients trust for `tls: self-signed`."""
    from mlctl.selfsigned import trusted_ca

    listen = attributes.get("listen")
    if not listen:
        return {}
    return {
        "listen": {
            "address": listen["address"],
            "tls": listen["tls"],
            "mutual_tls": listen.get("mutual_tls", False),
            "behind_tls_proxy": listen.get("behind_tls_proxy", False),
            "certificate_expires": attributes.get("certificate_expires"),
            "ca_certificate": trusted_ca(attributes, project.data_dir),
        }
    }


def autoscale_report(attributes: dict, live: dict | None) -> dict:
    """Pure: what `show` says of an autoscaled deployment: its range and target as applied, and from its host
    the metric, the current and desired counts and the last decision that changed the count."""
    settings = scalesettings.settings_of(attributes) or {}
    scaler = (live or {}).get("autoscale") or {}
    decisions = scaler.get("decisions") or []
    return {
        "range": [settings.get("min_instances"), settings.get("max_instances")],
        **{k: settings.get(k) for k in ("target_utilization_percentage", "polling_interval", "stabilization_window")},
        "metric": scaler.get("metric"),
        "current": len((live or {}).get("instances") or []) if live else None,
        "desired": scaler.get("desired"),
        "last_decision": decisions[-1] if decisions else None,
        "waiting_for_room": scaler.get("waiting_for_room") or "",
    }


def autoscale_lines(a: dict) -> list[str]:
    """Pure: an autoscaled deployment's range, counts and last decision as `show` prints them."""
    lo, hi = a["range"]
    lines = [
        f"    autoscaling: {lo}..{hi} instance(s), now {a['current']} (desired {a['desired']}); target "
        f"{a['target_utilization_percentage']} % of {a['metric'] or '(host not running)'}; polled every "
        f"{a['polling_interval']} s, down after {a['stabilization_window']} s"
    ]
    last = a["last_decision"]
    if last:
        lines.append(
            f"    last decision ({last['at']}): {last['from']} -> {last['to']}, {last['outcome']}: {last['reason']}"
        )
    else:
        lines.append("    last decision: none yet (the count has not changed)")
    if a.get("waiting_for_room"):
        lines.append(f"    waiting for room: {a['waiting_for_room']}")
    return lines


def instance_report(i: dict) -> dict:
    """Pure: what `show` says of one live instance: index, pid, readiness, restarts, scoring workers, and for a
    container its id, name, image, limits and how it last ended."""
    return {
        **{k: i.get(k) for k in ("index", "pid", "ready", "restarts", "workers")},
        **{k: i[k] for k in runtimerecords.instance_fields() if k in i},
    }


def instance_line(i: dict) -> str:
    """Pure: one instance as `show` prints it."""
    where = (
        f"container {i['container']}"
        if "container" in i
        else f"pid {i['pid']}"
        if i.get("pid") is not None
        else f"Serve replica {i['replica_id']} on node {str(i.get('node_id') or '?')[:12]}"
        + (f" at {i['upstream'].removeprefix('tcp:')}" if i.get("upstream") else "")
        if i.get("replica_id")
        else "run by its platform (no local process)"
    )
    line = f"    instance {i['index']}: {where}, {'ready' if i['ready'] else 'not ready'}, {i['restarts']} restart(s)"
    if (i.get("workers") or 1) > 1:
        line += f", {i['workers']} workers"
    if i.get("forked"):
        line += ", forked from its environment's fork server"
    if i.get("oom_kills"):
        line += f", killed {i['oom_kills']} time(s) for running out of memory"
    if i.get("last_exit") and not i["ready"]:
        line += f"; it {i['last_exit']}"
    return line


def print_report(r: dict) -> None:
    click.echo(f"endpoint {r['name']}  ({r['provisioning_state']})")
    for key in ("scoring_uri", "openapi_uri", "auth_mode"):
        click.echo(f"  {key}: {r[key] or '(endpoint host not running)'}")
    if r.get("listen"):
        listen = r["listen"]
        line = f"  listen: {listen['address']}, tls {listen['tls']}" + (", mutual TLS" if listen["mutual_tls"] else "")
        if listen["certificate_expires"]:
            line += f", certificate expires {listen['certificate_expires']}"
        click.echo(line)
        if listen["ca_certificate"]:
            click.echo(
                f"  ca_certificate: {listen['ca_certificate']} (the project's development CA: trust it in clients)"
            )
    click.echo(f"  traffic: {json.dumps(r['traffic'])}  mirror_traffic: {json.dumps(r['mirror_traffic'])}")
    for name, d in r["deployments"].items():
        click.echo(
            f"  deployment {name}: {d['state']}, {d['ready_instances']}/{d['instance_count']} ready, "
            f"model {d['model']}, environment {d['environment']}"
            + ("" if d["status"] == "ready" else f"  [{d['status']} at the last apply]")
        )
        for line in autoscale_lines(d["autoscale"]) if "autoscale" in d else ():
            click.echo(line)
        for i in d["instances"]:
            click.echo(instance_line(i))


@click.command()
@click.argument("endpoint")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def command(project, endpoint, as_json):
    """Show ENDPOINT: scoring and OpenAPI URIs, auth mode, provisioning state, traffic, deployments."""
    state, _ = endpoint_state(project, endpoint)
    r = report(project, state, endpoint)
    if as_json:
        click.echo(json.dumps(r, indent=2))
    else:
        print_report(r)
