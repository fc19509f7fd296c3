"""The gateway's counters and their Prometheus text exposition (format 0.0.4) for `GET /metrics`."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0)

HELP = {
    "mlctl_requests_total": ("counter", "Scoring requests answered by the gateway, by deployment and HTTP status."),
    "mlctl_request_duration_seconds": ("histogram", "Time from request received to answer sent, by deployment."),
    "mlctl_requests_in_flight": ("gauge", "Requests being handled now (mirror copies too), by deployment."),
    "mlctl_rejected_requests_total": ("counter", "Requests answered 429 because the deployment was at its limit."),
    "mlctl_instance_restarts_total": ("counter", "Instance restarts by the supervisor (death or failed liveness)."),
    "mlctl_instances_ready": ("gauge", "Instances ready to serve, by deployment."),
    "mlctl_instances_current": ("gauge", "Instances in rotation now (ready or restarting), by deployment."),
    "mlctl_instances_desired": ("gauge", "Instances wanted: the autoscaler's last decision, else instance_count."),
    "mlctl_mirror_sent_total": ("counter", "Mirror copies forwarded to the mirrored deployment."),
    "mlctl_mirror_dropped_total": ("counter", "Mirror copies not sent (mirrored deployment busy or not ready)."),
    "mlctl_mirror_failed_total": ("counter", "Mirror copies sent whose answer was an error or a timeout."),
    "mlctl_gateway_connections": ("gauge", "Client connections open on the public port."),
    "mlctl_gateway_connections_refused_total": ("counter", "Connections answered 503 at the connection limit."),
    "mlctl_gateway_buffered_body_bytes": ("gauge", "Bytes of request bodies the gateway holds (read or being read)."),
    "mlctl_gateway_tls_handshakes_failed_total": (
        "counter",
        "TLS handshakes that failed (plain HTTP, no or a bad client certificate, timeouts, closed early).",
    ),
}


def _labels(pairs) -> str:
    if not pairs:
        return ""
    body = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in pairs
    )
    return "{" + body + "}"


class Histogram:
    __slots__ = ("counts", "sum", "count")

    def __init__(self):
        self.counts = [0] * len(BUCKETS)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        i = bisect_left(BUCKETS, value)  # the first bucket whose bound is >= value
        if i < len(BUCKETS):
            self.counts[i] += 1
        self.sum += value
        self.count += 1


class Metrics:
    """Plain dict counters (the event loop is single-threaded); `render()` writes the text format."""

    def __init__(self):
        self.requests = defaultdict(int)  # (deployment, status) -> n
        self.durations = defaultdict(Histogram)  # deployment -> histogram
        self.rejected = defaultdict(int)
        self.restarts = defaultdict(int)
        self.mirror_sent = defaultdict(int)
        self.mirror_dropped = defaultdict(int)
        self.mirror_failed = defaultdict(int)

    def observe(self, deployment: str, status: int, seconds: float) -> None:
        self.requests[(deployment, status)] += 1
        self.durations[deployment].observe(seconds)

    def render(
        self,
        ready: dict[str, int],
        in_flight: dict[str, int],
        gateway: dict[str, int] | None = None,
        counts: dict[str, dict[str, int]] | None = None,
    ) -> str:
        """The text exposition; `ready` and `in_flight` (gauges by deployment) are read from the deployments,
        `gateway` (gauges without labels, by metric name) from the public port's server, `counts` (gauges by
        deployment, by metric name: current and desired instances) from the deployments and autoscalers."""
        lines: list[str] = []

        def family(name, samples):
            kind, text = HELP[name]
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)

        family(
            "mlctl_requests_total",
            [
                f"mlctl_requests_total{_labels([('deployment', d), ('status', s)])} {n}"
                for (d, s), n in sorted(self.requests.items())
            ],
        )
        hist = []
        for d, h in sorted(self.durations.items()):
            cumulative = 0
            for bound, n in zip(BUCKETS, h.counts):
                cumulative += n
                hist.append(
                    f"mlctl_request_duration_seconds_bucket{_labels([('deployment', d), ('le', bound)])} {cumulative}"
                )
            hist.append(
                f"mlctl_request_duration_seconds_bucket{_labels([('deployment', d), ('le', '+Inf')])} {h.count}"
            )
            hist.append(f"mlctl_request_duration_seconds_sum{_labels([('deployment', d)])} {h.sum}")
            hist.append(f"mlctl_request_duration_seconds_count{_labels([('deployment', d)])} {h.count}")
        family("mlctl_request_duration_seconds", hist)
        for name, table in (
            ("mlctl_requests_in_flight", in_flight),
            ("mlctl_rejected_requests_total", self.rejected),
            ("mlctl_instance_restarts_total", self.restarts),
            ("mlctl_instances_ready", ready),
            *((name, table) for name, table in (counts or {}).items()),
            ("mlctl_mirror_sent_total", self.mirror_sent),
            ("mlctl_mirror_dropped_total", self.mirror_dropped),
            ("mlctl_mirror_failed_total", self.mirror_failed),
        ):
            family(name, [f"{name}{_labels([('deployment', d)])} {n}" for d, n in sorted(table.items())])
        for name, value in (gateway or {}).items():
            family(name, [f"{name} {value}"])
        return "\n".join(lines) + "\n"
