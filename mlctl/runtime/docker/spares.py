"""Warm spare containers (`docker.spare_container: true`): per deployment, one container started ahead with
everything a fresh instance container has but its model and code, whose interpreter has imported the scoring
server and the deployment's packages (`mlctl.runtime.server.spare`), waiting to become the next instance.

A claim (the launcher's, in place of creating a container) binds the version's model and code read-only into the
spare's mount namespace at Azure's paths (`mlctl/runtime/kit/nsbind.py --at`, a root helper: `open_tree` here,
`mount_setattr` read-only, `setns`, `move_mount` onto mount points in the spare's empty tmpfs at
/var/azureml-app), renames the spare's folder (its /run/mlctl) to the instance's, and sends the server's arguments,
environment and working folder over the spare's socket there; the spare then runs the server's `main` as a fresh
start would (the user's `score.py` and `init()` run only then), and the container is renamed to the instance's
name. So nothing is mounted on this machine, and a spare holds no other deployment's files: its own cgroup and
limits, network `none`, uid, capabilities and read-only root are those of the instance it becomes, fixed when it
was created (`spare_key` says which settings must match; else it is removed and the instance starts fresh).

Blocking calls: the launcher runs them off its event loop. docs/runtime.md "Warm spare containers".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from mlctl.runtime.docker import containers, labels
from mlctl.runtime.host.sockets import instance_folder, remove_instance_folder
from mlctl.runtime.kit.preloads import modules_to_preload, own_modules
from mlctl.runtime.kit.servercommand import azure_variables, server_args

NSBIND = str(Path(__file__).parent.parent / "kit" / "nsbind.py")
SPARE_SOCKET = "spare.sock"  # in the spare's folder (/run/mlctl inside), removed by the spare once claimed
APP_ROOT = "/var/azureml-app"  # an empty tmpfs in a spare: the model and code are bound under it when claimed
READY_TIMEOUT_S = 300.0  # for a spare's imports
STEP_TIMEOUT_S = 30.0  # for the binding helper, and for the spare's answer to a claim
LINE_CHARS = 500


class Refused(Exception):
    """The spare's interpreter refused (an import failed or started a thread): this deployment starts fresh."""


def is_wanted(spec) -> bool:
    """Does the project want warm spares (`docker.spare_container`, default false) for `spec` (not a custom
    container, which runs its image's own server)?"""
    return (spec.launch or {}).get("spare_container") is True and not spec.routes and bool(spec.code_dir)


def why_not_here() -> str | None:
    """Why this machine cannot claim spares (None: it can): the host binds into a container's namespace as root."""
    if os.geteuid() != 0:
        return "mlctl does not run as root, so it cannot bind a version's model and code into a running container"
    return None


def spare_key(spec, uid: int | None) -> str:
    """Pure: what a spare was made for and an instance must match to claim it: the image and interpreter, the
    deployment's variables (packages read some at import), the uid and every limit and confinement setting."""
    launch = spec.launch or {}
    body = [
        launch.get("image"),
        launch.get("python") or spec.python,
        sorted(spec.environment_variables.items()),
        uid,
        [launch.get(k) for k in ("nano_cpus", "memory_bytes", "memory_reservation", "cpu_shares", "pids_limit")],
        launch.get("read_only", True),
    ]
    return hashlib.sha256(json.dumps(body, default=str).encode()).hexdigest()[:16]


def spare_labels(spec, key, place) -> dict:
    """Pure: an instance's labels (so sweeps and destroy find it), marked `mlctl.instance=spare`, of no version."""
    out = containers.labels_of(spec, key, place)
    out[labels.key("instance")] = "spare"
    out.pop(labels.key("spec_digest"), None)
    return out


class Spare:
    """One warm spare container of a deployment: its folder (on this machine), engine id and main pid."""

    def __init__(self, spec, instance, place, uid: int | None):
        """A spare for the next instance of `spec` after `instance` (its labels are taken from that one's)."""
        self.key, self.place, self.uid = spare_key(spec, uid), place, uid
        self.name = f"mlctl-{place.endpoint}-{spec.name}-spare-{containers.endpoint_tag_of(place)}"
        self.folder = place.socket_dir / f"{spec.name}-spare"
        self.labels = spare_labels(spec, instance, place)
        self.id: str | None = None
        self.pid: int | None = None
        self.started = 0.0
        self.namespace: str | None = None  # its main process's mount namespace, as it started
        self.lock = threading.Lock()
        self.discarded = False
        self.ready: asyncio.Future  # the launcher's: done once it listens (start, then wait_ready)

    def start(self, spec) -> None:
        """Create and start the spare container, its interpreter importing what `spec`'s version needs."""
        api = containers.engine()
        launch = spec.launch
        instance_folder(self.place.socket_dir, self.folder.name, self.uid)
        preload = modules_to_preload(spec.code_dir, spec.scoring_script, spec.model_dir)
        env = {
            **spec.environment_variables,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": f"{containers.PACKAGE_TARGET}:{containers.SITE_TARGET}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/tmp",
        }
        command = [launch.get("python") or spec.python, "-m", "mlctl.runtime.server.spare"]
        command += ["--socket", f"{containers.SOCKET_TARGET}/{SPARE_SOCKET}", "--preload", *preload]
        host_config = containers.host_config_of(api, launch, [], self.folder, {APP_ROOT: "rw,nosuid,nodev,mode=755"})
        cid, pid, started = containers.create_and_start(
            api,
            self.name,
            launch["image"],
            command,
            environment=env,
            working_dir="/tmp",
            labels=self.labels,
            user=containers.user_of(self.uid),
            host_config=host_config,
        )
        namespace = os.readlink(f"/proc/{pid}/ns/mnt") if pid else None
        with self.lock:
            self.id, self.pid, self.started, self.namespace = cid, pid, started, namespace
            if self.discarded:  # the launcher closed meanwhile
                containers.remove(cid)
                remove_instance_folder(self.folder)

    def wait_ready(self) -> None:
        """Until the spare listens (its imports done); Refused with what it printed when it ended instead."""
        api = containers.engine()
        deadline = time.monotonic() + READY_TIMEOUT_S
        checked = 0.0
        while not (self.folder / SPARE_SOCKET).exists():
            if self.discarded or self.id is None:
                raise OSError("the spare was removed")
            if time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                state = api.inspect_container(self.id)["State"]
                if not state.get("Running"):
                    said = api.logs(self.id, stdout=True, stderr=True, tail=5).decode(errors="replace").strip()
                    raise Refused(
                        said.removeprefix("refused: ")[-LINE_CHARS:] or f"it exited ({state.get('ExitCode')})"
                    )
            if time.monotonic() > deadline:
                raise OSError(f"it did not import its packages within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def hand_over(self, spec, folder: Path) -> None:
        """Bind `spec`'s model and code read-only at their paths in the spare, and make its folder `folder` (the
        instance's, where the caller makes the output FIFO before `go`)."""
        launch = spec.launch
        if self.namespace is None or os.readlink(f"/proc/{self.pid}/ns/mnt") != self.namespace:
            raise OSError(f"the spare's process {self.pid} is gone (its pid is not in the spare's namespace)")
        pairs = [str(spec.model_dir), launch["model_target"], str(spec.code_dir), launch["code_target"]]
        helper = subprocess.run(
            [sys.executable, "-I", "-S", NSBIND, str(self.pid), "--at", *pairs],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=STEP_TIMEOUT_S,
        )
        if helper.returncode != 0:
            raise OSError(helper.stderr.decode(errors="replace").strip()[-LINE_CHARS:] or f"exit {helper.returncode}")
        remove_instance_folder(folder)
        os.rename(self.folder, folder)
        self.folder = folder

    def go(self, spec, key, place) -> None:
        """Tell the spare to become instance `key` of `spec` (its server's arguments, environment, working folder),
        and give its container the instance's name."""
        launch = spec.launch
        model, code = launch["model_target"], launch["code_target"]
        request = {
            "argv": server_args(spec, f"{code}/{spec.scoring_script}", model, *containers.socket_and_output())[2:],
            "env": {
                **azure_variables(spec, model, code),
                "PYTHONPATH": f"{containers.PACKAGE_TARGET}:{containers.SITE_TARGET}",
                "PYTHONDONTWRITEBYTECODE": "1",
                "HOME": "/tmp",
            },
            "cwd": code,
            "shadowed": sorted(own_modules(Path(spec.code_dir), Path(spec.code_dir) / spec.scoring_script)),
        }
        payload = json.dumps(request).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(STEP_TIMEOUT_S)
            conn.connect(str(self.folder / SPARE_SOCKET))
            conn.sendall(struct.pack(">I", len(payload)) + payload)
            answer = conn.makefile("rb").readline(1 << 16)
        if json.loads(answer or b"{}").get("ok") is not True:
            raise OSError(f"the spare answered {answer[:LINE_CHARS]!r}")
        api, name = containers.engine(), containers.name_of(spec, key, place)
        try:
            api.rename(self.id, name)
        except Exception as e:
            if getattr(e, "status_code", None) != 409:  # 409: a container of that name is left from a dead host
                raise
            api.remove_container(name, force=True)
            api.rename(self.id, name)

    def discard(self) -> None:
        """Remove the spare's container and folder (not claimed, or its claim failed)."""
        with self.lock:
            self.discarded = True
            cid = self.id
        if cid is not None:
            containers.remove(cid)
        remove_instance_folder(self.folder)
