"""The Ray cluster as mlctl uses it: connect, upload packages, deploy, scale, read and delete Serve applications.

Every Ray and Serve call of mlctl is here (Ray is imported on first use, by these functions only), so a
change of Ray's API is fixed in one module; the version is pinned in pyproject.toml's `ray` extra.
Applications are deployed one by one by name (`serve.run(app, name=...)`), never
through the declarative whole-config API, which would delete the applications it does not list.
Local folders reach the nodes as content-addressed packages in the cluster's store (`gcs://...zip`
URIs, uploaded here), never as paths: Serve keeps only URIs in an application's runtime_env.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from mlctl.waiting import Timeout, wait_until
from mlctl.errors import MlctlError
from mlctl.runtime.ray.apps import word

NAMESPACE = "mlctl"
SERVE_CONTROLLER, SERVE_NAMESPACE = "SERVE_CONTROLLER_ACTOR", "serve"  # Serve's controller actor (its constants.py)
DETAILS_S = 120.0  # bounds one answer of Serve's controller
CONNECT_TIMEOUT_S = 5.0
START_HINT = (
    "Start one with `ray start --head` (then `ray start --address=HOST:PORT` on each other machine), "
    "or set `address:` in the `ray:` block of mlctl.yaml (or RAY_ADDRESS) to a running cluster's "
    "GCS address; see docs/runtime.md."
)


class ClusterError(MlctlError):
    """The cluster cannot be reached or refused an operation (the message names the address)."""


def cluster_address(settings) -> str:
    """The address to connect to: the `ray:` block's `address`, else RAY_ADDRESS; ClusterError when neither is set."""
    address = (settings or {}).get("address") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ClusterError(
            "the ray runtime has no cluster address",
            detail="Set `address:` in the `ray:` block of mlctl.yaml (HOST:PORT or auto) or the "
            "RAY_ADDRESS variable. " + START_HINT,
        )
    return address


def _reachable(address: str) -> str | None:
    """None when a GCS answers TCP at HOST:PORT (or the address is `auto`), else why not."""
    if address == "auto" or address.startswith("ray://"):
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            return None
    except (OSError, ValueError) as e:
        return getattr(e, "strerror", None) or str(e)


def connect(address: str) -> None:
    """Connect this process to the cluster at `address` (once); ClusterError naming the address and how
    to start a cluster when none answers there."""
    import ray

    if ray.is_initialized():
        return
    route_logs()
    why = _reachable(address)
    if why is None:
        try:
            with _stderr_to(client_log()):  # Ray's C++ core writes its warnings to the process's stderr
                ray.init(
                    address=address,
                    namespace=NAMESPACE,
                    logging_level=logging.INFO,
                    log_to_driver=False,
                    configure_logging=False,
                )
            route_logs()  # again: whatever ray.init attached to its loggers
            return
        except (ConnectionError, RuntimeError, ValueError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ClusterError(f"no Ray cluster answers at {address}: {why}", detail=START_HINT)


def client_log() -> Path:
    """Where Ray's and Serve's own messages in mlctl's process go: `$MLCTL_CACHE/ray/client.log`."""
    from mlctl.runtime.kit.virtualenvs import cache_dir

    return cache_dir() / "ray" / "client.log"


@contextlib.contextmanager
def _stderr_to(path: Path):
    """File descriptor 2 appended to `path` meanwhile (what native code prints there too); unchanged when
    the file cannot be opened."""
    try:
        target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(target, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)


def route_logs() -> None:
    """Send the `ray` loggers (Ray's warnings such as "Failed to determine local IP", Serve's INFO lines) to
    `client_log()` instead of mlctl's output; mlctl says what matters itself (ClusterError, progress). Importing
    `ray.serve` attaches Serve's stream handler: `_serve` calls this again after it (not imported before it is
    needed: 3-7 s of a CLI process or a directory lookup on a busy machine, issue 28's failover figures)."""
    path = client_log()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ray", "ray.serve"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
            if isinstance(old, logging.FileHandler):
                old.close()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def upload(runtime_env: dict) -> dict:
    """`runtime_env` with its local `working_dir` and `py_modules` folders uploaded to the cluster's
    store and replaced by their content-addressed URIs (an unchanged folder is not uploaded again)."""
    import ray
    from ray._private.runtime_env.py_modules import upload_py_modules_if_needed
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

    scratch = ray._private.worker.global_worker.node.get_runtime_env_dir_path()
    quiet = logging.getLogger("mlctl.ray.upload")
    quiet.setLevel(logging.WARNING)
    env = upload_py_modules_if_needed(dict(runtime_env), include_gitignore=False, scratch_dir=scratch, logger=quiet)
    env = upload_working_dir_if_needed(env, include_gitignore=False, scratch_dir=scratch, logger=quiet)
    env.pop("excludes", None)
    return env


def _ray_errors(fn):
    """Ray's and Serve's exceptions from `fn` as ClusterError (the driver turns it into a DriverError)."""
    import functools

    @functools.wraps(fn)
    def call(*args, **kwargs):
        from ray.exceptions import RayError

        served = sys.modules.get("ray.serve.exceptions")  # (Serve raises its own only once it was imported)
        try:
            return fn(*args, **kwargs)
        except (RayError, TimeoutError, *((served.RayServeException,) if served else ())) as e:
            raise ClusterError(
                f"Ray Serve refused: {str(e).splitlines()[0] if str(e) else type(e).__name__}", detail=str(e)[:4000]
            ) from None

    return call


_SERVE: list = []  # ray.serve once _serve imported it and routed its log handler


def _serve():
    """`ray.serve`, imported (and its log handler routed to client_log() once)."""
    if not _SERVE:
        import ray.serve

        route_logs()
        _SERVE.append(ray.serve)
    return _SERVE[0]


def _client():
    _serve()
    from ray.serve.context import _get_global_client

    return _get_global_client()


@_ray_errors
def details() -> dict:
    """Serve's instance details ({"applications": {name: {...}}, "proxy_location", "http_options", ...});
    {} when Serve is not running on the cluster. Asked of Serve's controller actor directly (what Serve's client
    does, a JSON-ready dict), so that `show`, a refresh and the hosts' directory lookups never import `ray.serve`."""
    import ray

    try:
        controller = ray.get_actor(SERVE_CONTROLLER, namespace=SERVE_NAMESPACE)
    except ValueError:  # no Serve instance on the cluster
        return {}
    return ray.get(controller.get_serve_instance_details.remote(), timeout=DETAILS_S)


@_ray_errors
def nodes() -> list[dict]:
    """The cluster's nodes as Ray reports them (ray.nodes(): `Alive`, `Resources`, ...)."""
    import ray

    return list(ray.nodes())


@_ray_errors
def deploy(application, name: str) -> None:
    """Deploy one application by name, without a route on Serve's proxy (the hosts reach its servers), Serve
    started with its defaults when it is not running; returns at once: `wait_running` waits. Its replica
    count can later be set with `scale`."""
    serve = _serve()
    serve._run(application, _blocking=False, name=name, route_prefix=None, external_scaler_enabled=True)


@_ray_errors
def scale(name: str, deployment: str, count: int) -> None:
    """Set the replica count of a running application's deployment (the replicas kept go on serving)."""
    import ray

    _serve()
    from ray.serve._private.common import DeploymentID

    ray.get(
        _client()._controller.update_deployment_replicas.remote(DeploymentID(name=deployment, app_name=name), count)
    )


@_ray_errors
def delete(names: list[str]) -> None:
    """Delete these applications and wait until they are gone. Their servers' directory entries go first: that
    releases the servers (the hosts drained them before apply deletes an application), which end at once
    instead of waiting for a release (directory.RELEASE_S)."""
    from mlctl.runtime.ray import directory

    if names:
        directory.forget(names)
        _client().delete_apps(names, blocking=True)
        directory.forget(names)


def room_message(app: dict, available: list[dict]) -> str:
    """Pure: why the cluster cannot place the application's starting replicas ("" when it may): Serve's own
    message once it said so (after 30 s), else when no alive node has the CPUs (and memory, GPUs) one replica
    reserves available now. `available` holds each alive node's available resources (Ray's names)."""
    scorer = (app.get("deployments") or {}).get("scorer") or {}
    message = scorer.get("message") or ""
    if "to be scheduled" in message:
        return message
    options = (scorer.get("deployment_config") or {}).get("ray_actor_options") or {}
    needs = {
        "CPU": options.get("num_cpus") or 0,
        "memory": options.get("memory") or 0,
        "GPU": options.get("num_gpus") or 0,
    }
    if any(all(node.get(k, 0) + 1e-9 >= v for k, v in needs.items() if v) for node in available):
        return ""
    asked = ", ".join(f"{k} {v:g}" for k, v in needs.items() if v) or "nothing"
    most = max((node.get("CPU", 0) for node in available), default=0)
    return (
        f"no node of the cluster has room for one more replica (each reserves {asked}; the most CPUs "
        f"available on a node now: {most:g}): it stays pending until replicas end or a node joins "
        "(Ray's cluster autoscaler adds nodes for pending placements)"
    )


@_ray_errors
def no_room(app: dict) -> str:
    """Why the cluster cannot place the application's starting replicas now ("" when it may): `room_message`
    on the alive nodes' available resources."""
    from ray._private import state

    return room_message(app, list(state.available_resources_per_node().values()))


def wait_running(name: str, timeout: float, progress: Callable[[str], None] = lambda m: None) -> dict:
    """The application's details once it is RUNNING with every replica up; ClusterError with Serve's message
    (a replica's traceback when its constructor failed) when it fails or time runs out. A deployment
    whose replicas keep failing to start is given up after its first failures, not Serve's many retries."""
    seen = {"state": "", "app": {}}

    def running() -> dict | None:
        app = details().get("applications", {}).get(name)
        if app is None:
            raise ClusterError(f"Serve application {name} disappeared while it was deploying")
        failure = _failure(app)
        if failure:
            raise ClusterError(f"Serve application {name} failed to deploy", detail=failure)
        if word(app.get("status")) == "RUNNING" and _replicas_running(app):
            return app
        state = f"{word(app.get('status'))}: " + ", ".join(f"{s} {n}" for s, n in sorted(replica_states(app).items()))
        if state != seen["state"]:
            progress(state)
        seen.update(state=state, app=app)
        return None

    try:
        return wait_until(running, timeout, f"Serve application {name} is running", interval=0.5)
    except Timeout:
        raise ClusterError(
            f"Serve application {name} was not running after {timeout:.0f}s ({seen['state']})",
            detail=seen["app"].get("message") or "",
        ) from None


def replica_states(app: dict) -> dict[str, int]:
    """Pure: {replica state: count} over an application's deployments (from its details)."""
    out: dict[str, int] = {}
    for d in (app.get("deployments") or {}).values():
        for r in d.get("replicas") or []:
            out[word(r.get("state"))] = out.get(word(r.get("state")), 0) + 1
    return out


def _replicas_running(app: dict) -> bool:
    for d in (app.get("deployments") or {}).values():
        target = d.get("target_num_replicas") or 0
        running = sum(1 for r in d.get("replicas") or [] if word(r.get("state")) == "RUNNING")
        if running < target:
            return False
    return True


def _failure(app: dict) -> str:
    """Pure: why an application's deployment failed (its message, with the replica's traceback), or ""."""
    if word(app.get("status")) == "DEPLOY_FAILED":
        return app.get("message") or "DEPLOY_FAILED"
    for d in (app.get("deployments") or {}).values():
        message = d.get("message") or ""
        if word(d.get("status")) == "DEPLOY_FAILED" or ("failed to start" in message and "Error" in message):
            return message
    return ""


def _read_log(relative: str, offset: int, lines: int) -> tuple[str, int]:
    """(Runs on the node of the log file, as a Ray task) the text of the node's log file `relative` (to its
    logs folder) from byte `offset`, or its last `lines` lines when `offset` is negative; and its size."""
    import ray

    path = os.path.join(ray._private.worker.global_worker.node.get_logs_dir_path(), relative.lstrip("/"))
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if offset < 0:
            f.seek(max(0, size - 200 * max(lines, 1)))
            text = f.read().decode("utf-8", "replace")
            return "\n".join(text.splitlines()[-lines:]), size
        f.seek(min(offset, size))
        return f.read().decode("utf-8", "replace"), size


@_ray_errors
def node_log(node_id: str, relative: str, offset: int = -1, lines: int = 100) -> tuple[str, int]:
    """A log file of one node, read there by a task pinned to it (no dashboard needed): see `_read_log`."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(_read_log).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
    )
    return ray.get(task.remote(relative, offset, lines), timeout=60)
