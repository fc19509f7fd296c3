"""An endpoint host in the cluster (runs in a Ray actor): the very `python -m mlctl.runtime.host` of the other
runtimes, started on the actor's node by `mlctl.runtime.host.client.start_host`, listening on the node's address
at the endpoint's port, configured from the cluster's KV (hostconfig.py) and kept alive by the actor.

The actor (`IngressHost`, detached and named `mlctl-<owner>-<endpoint>-ingress-<i>`, restarted by Ray without
limit: ingresshosts.py starts it) runs a keeper thread that starts the host when it is not running (it exited or
was killed) and configures it again whenever the configuration's generation changed (deployments created, rolled,
scaled or removed, autoscaling, traffic, auth, keys, TLS), so a host that Ray restarts, on this node or another,
serves what the endpoint serves without mlctl. mlctl gives the host its admin orders through `admin` (carried out
on the host's admin socket here, on its node) and reads `status` and `log`. The host dies with the actor (its
parent-death signal, MLCTL_PARENT_PID), so a killed actor leaves no host holding the port.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from mlctl.errors import MlctlError
from mlctl.privatefiles import ensure_folder, write_atomic
from mlctl.runtime.host import client as hostclient
from mlctl.runtime.host import secrets
from mlctl.runtime.host.runfiles import host_log, is_host_process
from mlctl.runtime.ray import directory, hostconfig, loadshare
from mlctl.runtime.ray.launcher import NODE_VARIABLE

log = logging.getLogger("mlctl.ingress")
CHECK_S = 1.0  # how often the keeper checks the host and the configuration's generation
START_S = 60.0  # one start of the host (it binds, answers its admin socket and writes its run record)


def data_folder(owner: str, endpoint: str, index: int) -> Path:
    """Where host `index` of an endpoint keeps its files on its node (0700, in the node's temporary folder)."""
    root = Path(tempfile.gettempdir()) / f"mlctl-ingress-{os.getuid()}"
    ensure_folder(root, 0o700, what="ingress")
    return ensure_folder(root / f"{owner}-{endpoint}-{index}", 0o700, what="ingress", base=root)


class IngressHost:
    """One in-cluster endpoint host: its process, started and configured from the cluster's KV by a keeper thread."""

    def __init__(self, owner: str, endpoint: str, index: int):
        import ray

        self.owner, self.endpoint, self.index = owner, endpoint, index
        self.node_ip = ray.util.get_node_ip_address()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.data_dir = data_folder(owner, endpoint, index)
        self.lock = threading.RLock()  # one order at a time: mlctl's, or the keeper's reconfiguration
        self.info: hostclient.HostInfo | None = None
        self.generation = 0  # of the configuration the host was last configured with
        self.problem = ""
        self.stopping = False
        self.files: dict[str, str] = {}  # what the host's key and TLS files hold now
        self.checked = threading.Event()
        # the host is started by this thread, which lives as long as the actor: its parent-death signal fires only
        # when the actor's process ends
        threading.Thread(target=self._keep, daemon=True, name="mlctl-ingress-keeper").start()
        # the autoscalers' figures shared with the endpoint's other hosts (loadshare.py), beside the keeper: a long
        # order (a rollout) does not hold it up
        self.share = loadshare.LoadShare(owner, endpoint, index, f"{os.getpid()}-{time.time_ns()}")
        threading.Thread(target=self.share.run, args=(self._client,), daemon=True, name="mlctl-ingress-share").start()

    def _client(self) -> hostclient.HostClient | None:
        info = self.info
        return hostclient.HostClient(info) if info is not None and is_host_process(info.pid) else None

    # ---- the keeper ---------------------------------------------------------------------------------------------

    def _keep(self) -> None:
        while not self.stopping:
            try:
                with self.lock:
                    if not self.stopping:
                        self._check()
                        self.problem = ""
            except Exception as e:  # reported by status; tried again at the next check
                self.problem = f"{type(e).__name__}: {e}"
                log.warning("endpoint host %s-%d: %s", self.endpoint, self.index, self.problem)
            self.checked.set()
            time.sleep(CHECK_S)

    def _running(self) -> bool:
        return self.info is not None and is_host_process(self.info.pid)

    def _check(self) -> None:
        config = hostconfig.read(self.owner, self.endpoint)
        if config is None:
            raise LookupError("the cluster holds no configuration of this endpoint (mlctl apply writes it)")
        if not self._running():
            self._start(config)
        if config.get("generation") != self.generation:
            self._configure(config)

    def _start(self, config: dict) -> None:
        self.info, self.generation = None, 0
        self._write_files(config)
        listen = {**(config.get("listen") or {}), "address": self.node_ip, **self._tls_paths(config)}
        self.info = hostclient.start_host(
            self.data_dir,
            self.endpoint,
            auth_mode=config.get("auth_mode") or "key",
            port=config.get("port"),
            listen=listen,
            timeout=START_S,
            extra_env={"MLCTL_PARENT_PID": str(os.getpid()), NODE_VARIABLE: self.node_id},
        )
        log.info("endpoint host %s-%d runs (pid %d, port %d)", self.endpoint, self.index, self.info.pid, self.info.port)

    def _tls_paths(self, config: dict) -> dict:
        tls = config.get("tls") or {}
        return {k: str(self.data_dir / "tls" / f"{k}.pem") for k in ("certificate", "key", "client_ca") if tls.get(k)}

    def _write_files(self, config: dict) -> list[str]:
        """Write the keys and TLS files the configuration holds where they differ; which changed ("keys", "tls")."""
        wanted = {"keys": json.dumps(config.get("keys") or {}, sort_keys=True)}
        tls = config.get("tls") or {}
        wanted.update({f"tls:{k}": tls[k] for k in ("certificate", "key", "client_ca") if tls.get(k)})
        changed = [name for name, text in wanted.items() if self.files.get(name) != text]
        if "keys" in changed and config.get("keys"):
            secrets.write_secrets(self.data_dir, self.endpoint, config["keys"])
        folder = ensure_folder(self.data_dir / "tls", 0o700, what="TLS files", base=self.data_dir)
        for name in changed:
            if name.startswith("tls:"):
                write_atomic(folder / f"{name[4:]}.pem", wanted[name].encode(), what="TLS files")
        self.files.update(wanted)
        return sorted({name.partition(":")[0] for name in changed})

    def _configure(self, config: dict) -> None:
        """Bring the running host to the configuration: files, auth, deployments (servers read afresh from the
        cluster's directory), autoscaling, traffic; then the deployments it no longer lists are removed."""
        if self.info is None:
            return
        host = hostclient.HostClient(self.info)
        changed = self._write_files(config)
        if "keys" in changed:
            host.reload_keys()
        if "tls" in changed and config.get("tls"):
            host.reload_tls()
        host.set_auth(config.get("auth_mode") or "key")
        have = host.status().get("deployments") or {}
        wanted = config.get("deployments") or {}
        for name, spec in wanted.items():
            spec = self._as_holder(_with_current_servers(spec), config)
            timeout = float(spec.get("readiness_budget_s") or 120)
            if name not in have:
                host.create_deployment(spec, timeout=max(timeout, 120))
            elif have[name].get("digest") != spec.get("digest"):
                host.roll_deployment(spec, timeout=max(timeout, 120))
            elif name not in (config.get("scaling") or {}) and have[name].get("instance_count") != spec.get(
                "instance_count"
            ):
                host.scale_deployment(name, int(spec["instance_count"]))
        for name, scaling in (config.get("scaling") or {}).items():
            if name in wanted:
                host.set_scaling(name, scaling.get("scale_settings"), scaling.get("instance_count"))
        host.set_traffic(config.get("traffic") or {}, config.get("mirror_traffic") or {})
        for name in set(have) - set(wanted):
            host.remove_deployment(name)
        self.generation = config.get("generation") or 0
        log.info("endpoint host %s-%d configured (generation %s)", self.endpoint, self.index, self.generation)

    def _as_holder(self, spec, config: dict):
        """The spec with this host named as one of the endpoint's holders of its replicas' servers: a server Serve
        stops ends once every host released it (directory.release), not the first."""
        launch = (spec.get("launch") if isinstance(spec, dict) else None) or {}
        if not isinstance(launch, dict) or not launch.get("application"):
            return spec
        holders = int(config.get("replicas") or 1)
        return {**spec, "launch": {**launch, "holder": str(self.index), "holders": holders}}

    # ---- what mlctl calls ----------------------------------------------------------------------------------------

    def admin(self, method: str, path: str, body, timeout: float) -> tuple[int, bytes] | None:
        """Carry out one admin order on this node's host: (HTTP status, answer); None when the host does not run
        (it configures itself from the cluster when it starts)."""
        with self.lock:
            if not self._running():
                return None
            if path.startswith(("/keys/reload", "/tls/reload")):
                config = hostconfig.read(self.owner, self.endpoint) or {}
                self._write_files(config)
            if method == "POST" and path.startswith("/deployments/") and path.split("?")[0].count("/") <= 3:
                body = self._as_holder(body, hostconfig.read(self.owner, self.endpoint) or {})  # create, roll
            try:
                return hostclient.HostClient(self.info).exchange(method, path, body, timeout)
            except MlctlError as e:
                return 502, json.dumps({"message": str(e), "kind": "unreachable"}).encode()

    def status(self) -> dict:
        """Where this host runs, whether its process runs, and its own status report (None when it does not run or
        did not answer)."""
        report = None
        info = self.info
        running = info is not None and is_host_process(info.pid)
        if running:
            try:
                report = hostclient.HostClient(info).status()
            except MlctlError:
                report = None
        return {
            "index": self.index,
            "node_ip": self.node_ip,
            "node_id": self.node_id,
            "pid": info.pid if info else None,
            "actor_pid": os.getpid(),
            "port": info.port if info else None,
            "running": running,
            "generation": self.generation,
            "problem": self.problem,
            "status": report,
        }

    def ready(self, timeout: float) -> dict:
        """`status` once the host runs and is configured (or once `timeout` s passed, with the problem)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.status()
            if found["status"] is not None and found["generation"]:
                return found
            time.sleep(0.2)
        return self.status()

    def log(self, lines: int) -> str:
        """The last `lines` lines of the host's own log on this node."""
        try:
            with open(host_log(self.data_dir, self.endpoint), "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 300 * max(lines, 1)))
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError as e:
            return f"(no log yet: {e.strerror})"

    def stop(self) -> None:
        """Stop the host (its instances drained) and the keeper; the caller then kills this actor."""
        self.stopping = self.share.stopping = True
        with self.lock:
            if self._running():
                hostclient.HostClient(self.info).shutdown()


def _with_current_servers(spec: dict) -> dict:
    """A serve spec with its application's running servers as the cluster's directory has them now (read there:
    the spec's may be gone, replicas replaced since it was made); the spec as it is when they cannot be read."""
    launch = spec.get("launch") or {}
    if not launch.get("application"):
        return spec
    try:
        servers = directory.servers(launch["application"])
    except Exception:  # the Serve controller is busy or restarting: the host's launcher looks them up itself
        return spec
    return {**spec, "launch": {**launch, "servers": servers}} if servers else spec
