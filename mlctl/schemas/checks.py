"""Cross-checks: what no single document can know (names across files, traffic against deployments)."""

from __future__ import annotations

from mlctl.errors import Diagnostic
from mlctl.schemas.specs import Specs
from mlctl.schemas.validate import did_you_mean


def check_specs(specs: Specs) -> list[Diagnostic]:
    """Pure (over already-read specs): duplicate names and ports, deployments naming unknown endpoints, traffic
    rules."""
    out: list[Diagnostic] = []
    endpoints = {}
    ports = {}
    for e in specs.endpoints:
        if e.name in endpoints:
            out.append(
                Diagnostic(
                    f"endpoint '{e.name}' is defined twice (first at {endpoints[e.name].where.text()})",
                    "Remove one definition or rename one endpoint.",
                    **e.where.at("name"),
                )
            )
            continue
        endpoints[e.name] = e
        if e.port is not None:
            if e.port in ports:
                out.append(
                    Diagnostic(
                        f"port {e.port} is used by endpoints '{ports[e.port]}' and '{e.name}'",
                        "Give each endpoint its own port, or leave 'port' out.",
                        **e.where.at("port"),
                    )
                )
            ports[e.port] = e.name
    known_endpoints = set(endpoints) | specs.invalid["endpoint"]
    seen = {}
    by_endpoint: dict[str, set] = {name: set() for name in endpoints}
    for d in specs.deployments:
        if d.endpoint not in known_endpoints and not specs.incomplete:
            field = "endpoint_name" if not d.where.path else "name"
            out.append(
                Diagnostic(
                    f"deployment '{d.name}' names unknown endpoint '{d.endpoint}'",
                    (
                        "Define the endpoint in an endpoint YAML"
                        + (" (and name that file with -f too)" if specs.explicit else "")
                        + " or fix 'endpoint_name'."
                        + did_you_mean(d.endpoint, known_endpoints)
                    ),
                    **d.where.at(field),
                )
            )
            continue
        key = (d.endpoint, d.name)
        if key in seen:
            out.append(
                Diagnostic(
                    f"deployment '{d.name}' of endpoint '{d.endpoint}' is defined twice "
                    f"(first at {seen[key].where.text()})",
                    "Deployment names must be unique within an endpoint: rename or remove one.",
                    **d.where.at("name"),
                )
            )
            continue
        seen[key] = d
        by_endpoint.setdefault(d.endpoint, set()).add(d.name)
    for e in endpoints.values():
        failed = {n for ep, n in specs.invalid["deployment"] if ep in (e.name, None)}
        out.extend(check_traffic(e, by_endpoint.get(e.name, set()), failed, specs.incomplete))
    return out


def check_traffic(e, deployments: set, failed: set = frozenset(), incomplete: bool = False) -> list[Diagnostic]:
    """Pure: the traffic rules of one endpoint: weights total 0 or 100, name only its deployments,
    mirror at most one deployment and 50 percent (schema), never live and mirrored at once."""
    out = []
    for field in ("traffic", "mirror_traffic"):
        for name in getattr(e, field):
            if name not in deployments and name not in failed and not incomplete:
                have = ", ".join(sorted(deployments)) or "none"
                out.append(
                    Diagnostic(
                        f"{field} names unknown deployment '{name}' of endpoint '{e.name}'",
                        f"Name one of its deployments ({have}) or define '{name}'." + did_you_mean(name, deployments),
                        **e.where.at(field, name),
                    )
                )
    total = sum(e.traffic.values())
    if total not in (0, 100):
        out.append(
            Diagnostic(
                f"traffic of endpoint '{e.name}' totals {total}%",
                "Traffic weights must total 100 (or 0 to send no live traffic).",
                **e.where.at("traffic"),
            )
        )
    for name, pct in e.mirror_traffic.items():
        if pct > 0 and e.traffic.get(name, 0) > 0:
            out.append(
                Diagnostic(
                    f"deployment '{name}' gets both live traffic ({e.traffic[name]}%) and mirrored traffic ({pct}%)",
                    "Mirror traffic only to a deployment with 0% live traffic.",
                    **e.where.at("mirror_traffic", name),
                )
            )
    if deployments and total == 0 and not out and not failed and not incomplete:
        out.append(
            Diagnostic(
                f"endpoint '{e.name}' sends no live traffic to its deployments",
                "Requests without the azureml-model-deployment header will get 404; set 'traffic:' "
                "(e.g. {" + sorted(deployments)[0] + ": 100}) to route them.",
                severity="warning",
                **e.where.at("traffic"),
            )
        )
    return out
