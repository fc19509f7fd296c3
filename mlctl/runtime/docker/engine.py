"""The Docker engine mlctl talks to: `connect()` returns a client of the engine that answers, or one
clear error naming the address tried and how to start an engine, raised before anything changes.

The address is the SDK's: `DOCKER_HOST` when set (unix://, tcp://, ssh://), else the local socket
`unix:///var/run/docker.sock`. `failure()` turns an engine error met mid-order into the contract's
DriverError.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mlctl.errors import Diagnostic, MlctlError
from mlctl.runtime.contract import DriverError

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
START_ENGINE = (
    "Start a Docker engine (as root: `dockerd > /var/log/dockerd.log 2>&1 &`; install it with "
    "`apt-get install docker.io` when it is missing), or point DOCKER_HOST at a running one."
)


def address() -> str:
    """The engine address the SDK uses: DOCKER_HOST, else the local socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_ADDRESS


def _where() -> str:
    return f"{address()} (from DOCKER_HOST)" if os.environ.get("DOCKER_HOST") else address()


def _sdk():
    try:
        import docker
    except ImportError:
        raise MlctlError(
            Diagnostic(
                "the docker runtime needs the `docker` Python package, which is not installed",
                "Install it into mlctl's environment: pip install 'mlctl[docker]' (or pip install docker).",
            )
        ) from None
    return docker


def connect(settings: Mapping[str, Any] | None = None, *, timeout: float = 600) -> Any:
    """A `docker.DockerClient` of the engine that answers (pinged). `settings`: the project file's
    `docker:` block (read for nothing here yet). MlctlError naming the address tried when no engine
    answers or the SDK is missing; `timeout`: seconds for each later API call."""
    docker = _sdk()
    try:
        client = docker.DockerClient(base_url=address(), timeout=int(timeout))
        client.ping()
        return client
    except docker.errors.DockerException as e:
        raise unreachable(e) from None
    except OSError as e:  # a malformed address, a socket that is not one
        raise unreachable(e) from None


def unreachable(e: BaseException) -> MlctlError:
    """Pure: the error for an engine that does not answer at `address()`."""
    text = str(e)
    if "Permission denied" in text or "PermissionError" in text:
        return MlctlError(
            Diagnostic(
                f"the Docker engine at {_where()} refused mlctl: permission denied",
                "Run mlctl as a user in the `docker` group (or as root), or point DOCKER_HOST at an engine you "
                "may use.",
            )
        )
    return MlctlError(Diagnostic(f"no Docker engine answers at {_where()}", START_ENGINE))


def failure(what: str, e: BaseException) -> DriverError:
    """Pure: the DriverError for an engine error met while doing `what` (an engine that went away
    mid-apply says so, with how to start one)."""
    explanation = getattr(e, "explanation", None) or str(e)
    if is_connection_error(e):
        return DriverError(f"{what}: the Docker engine at {_where()} stopped answering", START_ENGINE)
    return DriverError(f"{what}: the Docker engine refused: {explanation}")


def is_connection_error(e: BaseException) -> bool:
    """Pure: is `e` the engine going away (a refused or broken connection), not a refusal?"""
    try:
        import requests
        import urllib3
    except ImportError:  # the SDK depends on requests; without it there is no engine error either
        return False
    return isinstance(
        e,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError,
            ConnectionError,
            FileNotFoundError,
        ),
    )


def client_of(ctx) -> Any:
    """The engine client of a run (`runcontext.DockerContext`): connected once per run."""
    return ctx.client


def engine_errors() -> tuple[type[BaseException], ...]:
    """The exception types an engine call raises when the engine refuses or goes away."""
    import docker
    import requests
    import urllib3

    return (docker.errors.DockerException, requests.exceptions.RequestException, urllib3.exceptions.HTTPError)
