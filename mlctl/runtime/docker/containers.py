"""Instance containers on the Docker engine: their names, labels and layout, how one is run, and why one ended.

Blocking calls (the launcher runs them off its event loop). The layout inside is Azure's: the model
read-only at `/var/azureml-app/azureml-models/NAME/VERSION` (AZUREML_MODEL_DIR), the code read-only at
`/var/azureml-app/CODE-FOLDER`, mlctl's own package read-only at /opt/mlctl/lib (with the image's
packages in /opt/mlctl/site on PYTHONPATH), and the instance's own folder (in the endpoint's socket
folder) at /run/mlctl, where the scoring server listens on its unix socket and writes its output to a
FIFO the host reads (outputs.py; only what comes before, such as the interpreter failing to start,
reaches the engine's log). No port is published, and the container has no network (`none`: the socket
is its only way in or out, and it needs no bridge of the engine).

Confined (docs/runtime.md, "What a container may do"): when mlctl runs as root the container runs as its
deployment's own unprivileged uid (identities.py), else as the host's user; every capability dropped,
`no-new-privileges`, a read-only root file system with a private tmpfs at /tmp, a pids limit and a
memory limit (the spec's `launch` carries the values the project's settings chose).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mlctl.runtime.docker import custom, labels
from mlctl.runtime.docker.engine import address
from mlctl.runtime.docker.outputs import fifo_name
from mlctl.runtime.host.runfiles import endpoint_tag
from mlctl.runtime.kit.servercommand import PACKAGE_PARENT, azure_variables, server_args
from mlctl.waiting import wait_until

SOCKET_TARGET = "/run/mlctl"
SOCKET_NAME = "server.sock"  # in the instance's folder (its FIFO beside it: outputs.fifo_name)
PIDS_LIMIT = 1024  # processes and threads of one container, unless the spec says otherwise
PACKAGE_TARGET = "/opt/mlctl/lib"
SITE_TARGET = "/opt/mlctl/site"
KIND = "instance"  # labels.KIND of an instance container (and of a warm spare, `mlctl.instance=spare`: spares.py)
LABEL_PROJECT = labels.key("project")  # the state's lineage
LABEL_DATA_DIR = labels.key("data_dir")  # the project's data folder (found again when the state is lost)
LABEL_TAG = labels.key("endpoint_tag")  # the data folder and endpoint together (runfiles.endpoint_tag)
LABEL_HOST_RUN = labels.key("host_run")  # the endpoint host that started it
HOST_RUN = f"{os.getpid()}-{os.urandom(4).hex()}"
LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}  # the engine's own copy of the output stays bounded


@functools.cache
def engine():
    """The engine's low-level client (DOCKER_HOST honoured), one per process, with room for one
    streaming connection per watched container."""
    import docker

    return docker.DockerClient(base_url=address(), max_pool_size=256).api


def folder_name(deployment: str, key) -> str:
    """Pure: the name of an instance's own folder in the endpoint's socket folder."""
    return f"{deployment}-g{key.generation}-{key.index}"


def endpoint_tag_of(place) -> str:
    return endpoint_tag(place.data_dir, place.endpoint)


def name_of(spec, key, place) -> str:
    """The container's name: endpoint, deployment, instance key and the endpoint tag (unique per project)."""
    return f"mlctl-{place.endpoint}-{spec.name}-g{key.generation}-{key.index}-{endpoint_tag_of(place)}"


def labels_of(spec, key, place) -> dict:
    """The container's labels: mlctl's, the project's lineage (from the spec), endpoint, deployment,
    instance key, serving spec digest, and which data folder and endpoint host it belongs to."""
    return {
        **{str(k): str(v) for k, v in (spec.launch.get("labels") or {}).items()},
        **labels.managed(
            KIND,
            endpoint=place.endpoint,
            deployment=spec.name,
            instance=f"{key.generation}-{key.index}",
            spec_digest=spec.digest,
            endpoint_tag=endpoint_tag_of(place),
            host_run=HOST_RUN,
            data_dir=os.path.realpath(place.data_dir),
        ),
    }


def project_containers(data_dir) -> list[dict]:
    """The instance containers of the project whose data folder is `data_dir` (any endpoint; warm spares too)."""
    return engine().containers(all=True, filters=labels.selector(KIND, data_dir=os.path.realpath(data_dir)))


def _mount(source, target: str, read_only: bool) -> dict:
    return {"Type": "bind", "Source": str(source), "Target": target, "ReadOnly": read_only}


def confinement(launch: dict) -> dict:
    """Pure: the host-config settings that confine an instance's container (capabilities, privileges, root
    file system, /tmp, pids); `launch` may relax the root file system (`read_only: false`) and set
    `pids_limit`."""
    read_only = launch.get("read_only", True)
    return {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": read_only,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,mode=1777"} if read_only else None,
        "pids_limit": launch.get("pids_limit") or PIDS_LIMIT,
    }


def reservation(launch: dict) -> dict:
    """Pure: the engine's reservation arguments of a container (resources.requests): a memory reservation
    and CPU shares, only those given."""
    out = {}
    if launch.get("memory_reservation"):
        out["mem_reservation"] = launch["memory_reservation"]
    if launch.get("cpu_shares"):
        out["cpu_shares"] = launch["cpu_shares"]
    return out


def run(spec, key, place, folder, uid: int | None) -> tuple[str, int | None, float, str]:
    """Create and start the instance's container as `uid` (None: the host's user), its server listening on
    its socket and writing all its output to its FIFO, both in `folder` (the instance's own, bind-mounted);
    (id, main pid on this machine, start time, the address the host reaches it at). A custom container
    (spec.routes) runs its image's own server instead (custom.py)."""
    api = engine()
    launch = spec.launch
    model, code = launch["model_target"], launch["code_target"]
    if spec.routes:
        cid, pid, started, port = custom.run_container(
            api,
            spec,
            name_of(spec, key, place),
            labels_of(spec, key, place),
            azure_variables(spec, model, code),
            [_mount(spec.model_dir, model, True), _mount(spec.code_dir, code, True)],
            {
                **confinement(launch),
                "nano_cpus": launch.get("nano_cpus") or None,
                "mem_limit": launch.get("memory_bytes") or None,
                "memswap_limit": launch.get("memory_bytes") or None,
                **reservation(launch),
                "log_config": {"Type": "json-file", "Config": LOG_OPTIONS},
            },
        )
        return cid, pid, started, f"tcp:127.0.0.1:{port}"
    env = {
        **azure_variables(spec, model, code),
        "PYTHONPATH": f"{PACKAGE_TARGET}:{SITE_TARGET}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",
    }
    host_config = host_config_of(
        api, launch, [_mount(spec.model_dir, model, True), _mount(spec.code_dir, code, True)], folder
    )
    args = server_args(spec, f"{code}/{spec.scoring_script}", model, *socket_and_output())
    cid, pid, started = create_and_start(
        api,
        name_of(spec, key, place),
        launch["image"],
        [launch.get("python") or spec.python, *args],
        environment=env,
        working_dir=code,
        labels=labels_of(spec, key, place),
        user=user_of(uid),
        host_config=host_config,
    )
    return cid, pid, started, f"unix:{folder / SOCKET_NAME}"


def socket_and_output() -> tuple[str, str]:
    """Pure: where an instance's server listens and writes its output, inside its container."""
    socket = f"{SOCKET_TARGET}/{SOCKET_NAME}"
    return socket, f"{SOCKET_TARGET}/{fifo_name(Path(socket))}"


def user_of(uid: int | None) -> str:
    """Pure: the container's user: the deployment's uid, else the host's own user."""
    return f"{uid}:{uid}" if uid is not None else f"{os.getuid()}:{os.getgid()}"


def host_config_of(api, launch: dict, mounts: list[dict], folder, tmpfs: dict | None = None) -> dict:
    """The host config of an instance container (or a warm spare's: `tmpfs` adds its empty /var/azureml-app):
    `mounts`, mlctl's package read-only, the instance's `folder` at /run/mlctl, confined, limited, no network."""
    confined = confinement(launch)
    if tmpfs:
        confined["tmpfs"] = {**(confined["tmpfs"] or {}), **tmpfs}
    return api.create_host_config(
        mounts=[
            *mounts,
            _mount(os.path.join(PACKAGE_PARENT, "mlctl"), f"{PACKAGE_TARGET}/mlctl", True),
            _mount(folder, SOCKET_TARGET, False),
        ],
        **confined,
        nano_cpus=launch.get("nano_cpus") or None,
        mem_limit=launch.get("memory_bytes") or None,
        memswap_limit=launch.get("memory_bytes") or None,
        **reservation(launch),
        init=True,
        network_mode="none",
        log_config={"Type": "json-file", "Config": LOG_OPTIONS},
    )


def create_and_start(api, name: str, image: str, command: list[str], **create) -> tuple[str, int | None, float]:
    """Create the container `name` (one of that name left by a dead host removed first) and start it: (id, its
    main process's pid on this machine, the start time)."""
    make = functools.partial(api.create_container, image, command, name=name, **create)
    try:
        cid = make()["Id"]
    except Exception as e:
        if getattr(e, "status_code", None) != 409:  # 409: a container of that name is left from a dead host
            raise
        api.remove_container(name, force=True)
        cid = make()["Id"]
    started = time.time()
    try:
        api.start(cid)
        pid = api.inspect_container(cid)["State"].get("Pid") or None
    except BaseException:
        remove(cid)
        raise
    return cid, pid, started


def cgroup_usage(pid: int):
    """CPU seconds and peak memory of the whole container (every process in it), read from the cgroup
    of its main process `pid` (cgroup v1 or v2); None when the files are not readable here."""
    from mlctl.runtime.host.launcher import Usage

    try:
        with open(f"/proc/{pid}/cgroup") as f:
            groups = {
                ctrl: path
                for _, ctrls, path in (line.rstrip("\n").split(":", 2) for line in f)
                for ctrl in ctrls.split(",")
            }
        if "memory" in groups:  # v1
            cpu_dir = next(d for d in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu") if os.path.isdir(f"/sys/fs/cgroup/{d}"))
            cpu = _read_int(f"/sys/fs/cgroup/{cpu_dir}{groups['cpuacct']}/cpuacct.usage") / 1e9
            peak = _read_int(f"/sys/fs/cgroup/memory{groups['memory']}/memory.max_usage_in_bytes")
        else:  # v2
            base = f"/sys/fs/cgroup{groups['']}"
            with open(f"{base}/cpu.stat") as f:
                cpu = next(int(line.split()[1]) for line in f if line.startswith("usage_usec")) / 1e6
            peak = _read_int(f"{base}/memory.peak")
    except (OSError, KeyError, StopIteration, ValueError):
        return None
    return Usage(cpu, peak)


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read().split()[0])


def changes(api, instances: list[dict]) -> list[str]:
    """What differs between the containers the host reports (`instances` of its status: container id,
    image, limits as launched) and what the engine runs now (changed outside mlctl, e.g. `docker update`)."""
    import docker

    out = []
    for i in instances:
        if not i.get("container"):
            continue
        try:
            info = api.inspect_container(i["container"])
        except docker.errors.NotFound:  # gone: the host sees it down (drift by its ready count)
            continue
        host = info.get("HostConfig") or {}
        want = {
            "image": i.get("image"),
            "CPUs": round((i.get("cpus") or 0) * 1e9),
            "memory": i.get("memory_bytes") or 0,
        }
        seen = {
            "image": (info.get("Config") or {}).get("Image"),
            "CPUs": host.get("NanoCpus") or 0,
            "memory": host.get("Memory") or 0,
        }
        out += [
            f"instance {i.get('index')}: {what} {seen[what]} (applied: {want[what]})"
            for what in want
            if seen[what] != want[what]
        ]
    return out


def output(cid: str):
    """The container's output (stdout and stderr) as it comes, until it stops."""
    return engine().logs(cid, stream=True, follow=True, stdout=True, stderr=True)


@dataclass(frozen=True)
class End:
    reason: str  # as the host's health says it ("exited with code 1")
    outside: bool  # stopped or removed by someone outside mlctl
    oom_killed: bool


def ending(cid: str, started: float, memory_bytes: int | None, ours) -> End:
    """Why the container stopped running (waits until it has); `ours()`: mlctl stopped it."""
    import docker

    api = engine()
    try:
        code = api.wait(cid, timeout=None)["StatusCode"]
        state = api.inspect_container(cid)["State"]
    except docker.errors.NotFound:
        return End("was removed outside mlctl", True, False)
    except Exception as e:  # the engine stopped answering
        return End(f"was lost with the Docker engine ({e})", False, False)
    if state.get("OOMKilled"):
        limit = f" (its memory limit is {memory_bytes // 2**20} MiB)" if memory_bytes else ""
        return End(f"was killed for running out of memory{limit}, exit code {code}", False, True)
    if ours():
        return End(f"was stopped by mlctl, exit code {code}", False, False)
    if _stopped_through_engine(cid, started):
        if _removed_soon(cid):  # docker rm -f kills first, then removes
            return End("was removed outside mlctl", True, False)
        return End(f"was stopped outside mlctl (docker stop or kill), exit code {code}", True, False)
    return End(f"exited with code {code}", False, False)


def _stopped_through_engine(cid: str, started: float) -> bool:
    """Did someone ask the engine to stop or kill the container since it started?"""
    try:
        events = engine().events(
            since=int(started),
            until=int(time.time()) + 1,
            decode=True,
            filters={"container": cid, "event": ["kill", "stop"]},
        )
        return any(True for _ in events)
    except Exception:
        return False


def _removed_soon(cid: str, within: float = 1.0) -> bool:
    """Is the container removed within `within` seconds (polled)?"""
    import docker

    def removed() -> bool:
        try:
            engine().inspect_container(cid)
        except docker.errors.NotFound:
            return True
        return False

    try:
        return wait_until(removed, within, f"container {cid[:12]} is removed")
    except Exception:  # not removed in time, or the engine cannot say
        return False


def stop(cid: str, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (at once when 0); gone already is fine."""
    import docker

    try:
        if grace > 0:
            engine().stop(cid, timeout=max(1, round(grace)))
        else:
            engine().kill(cid)
    except docker.errors.APIError:
        pass


def remove(cid: str) -> None:
    import docker

    try:
        engine().remove_container(cid, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if "already in progress" not in str(e):
            raise


def remove_leftovers(tag: str) -> int:
    """Remove the containers of endpoint `tag` that another (dead) host started; how many."""
    found = [
        c
        for c in engine().containers(all=True, filters=labels.selector(KIND, endpoint_tag=tag))
        if c["Labels"].get(LABEL_HOST_RUN) != HOST_RUN
    ]
    for c in found:
        remove(c["Id"])
    return len(found)
