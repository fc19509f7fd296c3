"""The per-apply view of each endpoint host that the kit's drivers read: found and asked for its status once
per run (a refresh reads each host once, however many resources it serves), forgotten once an order
changes it. It travels in `HostedContext`, the context of every runtime built from the kit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlctl.runtime.contract import DriverError, RuntimeContext
from mlctl.runtime.host import client as hostclient

_UNREAD: Any = object()


class EndpointHosts:
    """The endpoint hosts of one project in one run, each read at most once until `forget`."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._info: dict[str, hostclient.HostInfo | None] = {}
        self._status: dict[str, dict | None] = {}

    def info(self, endpoint: str) -> hostclient.HostInfo | None:
        """The running host of `endpoint`, None when none runs (read once per run)."""
        if endpoint not in self._info:
            self._info[endpoint] = hostclient.find_host(self.data_dir, endpoint)
        return self._info[endpoint]

    def status(self, endpoint: str) -> dict | None:
        """The host's status report (read once per run), None when the host is not running or does not answer."""
        if endpoint not in self._status:
            info = self.info(endpoint)
            try:
                self._status[endpoint] = hostclient.HostClient(info).status() if info else None
            except hostclient.HostError:
                self._status[endpoint] = None
        return self._status[endpoint]

    def deployments(self, endpoint: str) -> dict:
        """{name: the host's report of it} of the deployments the host runs ({} without a host)."""
        return (self.status(endpoint) or {}).get("deployments") or {}

    def deployment(self, endpoint: str, name: str) -> dict | None:
        """The host's report of one deployment, None when it does not run it."""
        return self.deployments(endpoint).get(name)

    def running(self, endpoint: str) -> bool:
        """Does a host of `endpoint` run now (found afresh)?"""
        return hostclient.find_host(self.data_dir, endpoint) is not None

    def forget(self, endpoint: str) -> None:
        """An order changed the host (or may have): read it again next time."""
        self._info.pop(endpoint, None)
        self._status.pop(endpoint, None)

    def forget_status(self, endpoint: str) -> None:
        """The host's status changed (an order ran, instances became ready): ask it again next time."""
        self._status.pop(endpoint, None)

    def client(self, endpoint: str) -> hostclient.HostClient:
        """A client of the running host, found afresh (an order is about to change it); DriverError when
        it is not running."""
        self.forget(endpoint)
        info = hostclient.find_host(self.data_dir, endpoint)
        if info is None:
            raise DriverError(
                f"the endpoint host of {endpoint!r} is not running",
                "Run `mlctl plan` to see the drift and `mlctl apply` to restart it.",
            )
        return hostclient.HostClient(info)


@dataclass
class HostedContext(RuntimeContext):
    """The run's context of a runtime whose endpoints are endpoint hosts: the contract's, and `hosts`."""

    hosts: EndpointHosts = field(default=_UNREAD)

    def __post_init__(self) -> None:
        if self.hosts is _UNREAD:
            self.hosts = EndpointHosts(self.data_dir)
