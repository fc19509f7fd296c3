"""The per-apply view of each endpoint host that the kit's drivers read: found and asked for its status once
per run (a refresh reads each host once, however many resources it serves), forgotten once an order
changes it. It travels in `HostedContext`, the context of every runtime built from the kit.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlctl.runtime.contract import DriverError, RuntimeContext
from mlctl.runtime.host import client as hostclient

_UNREAD: Any = object()
READ_AHEAD = 16  # host status requests in flight at once during a refresh


def _status_of(info: hostclient.HostInfo | None) -> dict | None:
    """A host's status report, None when it is not running or does not answer."""
    try:
        return hostclient.HostClient(info).status() if info else None
    except hostclient.HostError:
        return None


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
            self._status[endpoint] = _status_of(self.info(endpoint))
        return self._status[endpoint]

    def read_ahead(self, endpoints: Iterable[str]) -> None:
        """Ask the hosts of these endpoints for their status all at once (READ_AHEAD at a time), so a refresh of
        many endpoints waits for the slowest host, not for the sum of them (each answer costs the host a
        wake-up, which on a busy machine is most of the time). A host whose reading fails in another way than
        `status` expects is left to be read (and its failure raised) when a driver asks."""
        todo = sorted({e for e in endpoints if e not in self._status})
        if not todo:
            return

        def read(endpoint: str):
            try:
                info = hostclient.find_host(self.data_dir, endpoint)
                return info, _status_of(info)
            except Exception:
                return _UNREAD, _UNREAD

        with ThreadPoolExecutor(max_workers=min(READ_AHEAD, len(todo)), thread_name_prefix="read-ahead") as pool:
            for endpoint, (info, status) in zip(todo, pool.map(read, todo)):
                if status is not _UNREAD:
                    self._info[endpoint], self._status[endpoint] = info, status

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

    def read_ahead(self, addresses) -> None:
        """Every endpoint host these recorded resources belong to, asked for its status at once."""
        self.hosts.read_ahead(a.endpoint for a in addresses if a.endpoint)
