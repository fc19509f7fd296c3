"""The load an endpoint's in-cluster hosts share, so that their autoscalers agree (issue 29 with `ray.ingress:
cluster`): each host sees only its share of the requests, and all of them scale the same Serve application.

Each host's actor (ingress.py) runs a `LoadShare` thread: every SHARE_S it tells its host what the other hosts
carry (`HostClient.share_load`, answered with the host's own figures of each autoscaled deployment: its mean
in-flight requests over its last poll, its desired and current counts), then publishes those figures in the
cluster's KV (namespace `mlctl`, key `<endpoint prefix>load/<host index>`, with a sequence number) and reads the
other hosts'. A host whose sequence number has not moved for STALE_S is taken for lost: its figures no longer
count, and it cannot lead. The leader is the lowest-numbered host alive (no scheduler, no election: every host
computes the same from the same KV); the others follow its count (host/scalepolicy.follow). A lost leader is
replaced by the next host within STALE_S, so scaling never freezes; a host that hears nothing for a while (its
actor's thread stopped) decides alone (host/autoscaler.PEERS_STALE_S).
"""

from __future__ import annotations

import json
import logging
import time

from mlctl.runtime.ray.apps import endpoint_prefix
from mlctl.runtime.ray.hostconfig import NAMESPACE

log = logging.getLogger("mlctl.ingress")
SHARE_S = 0.5  # how often a host's figures are published and the others' read
STALE_S = 5.0  # a host whose figures did not move for this long is taken for lost


def prefix(owner: str, endpoint: str) -> str:
    """Pure: the KV prefix of an endpoint's hosts' figures."""
    return f"{endpoint_prefix(owner, endpoint)}load/"


def combine(index: int, published: dict[int, dict], alive: set[int]) -> dict[str, dict]:
    """Pure: what host `index` hears of the others, by deployment: `others_in_flight` (the sum over the other alive
    hosts), `leader` (the lowest alive index, this host included), `leader_desired` (the leader's desired count,
    None when this host leads or the leader has no figure of the deployment yet) and `hosts` (how many are alive).
    `published`: {index: {deployment: {"in_flight", "desired", "count"}}}; `alive`: the other hosts taken for alive.
    Carried out by `LoadShare.step`."""
    counted = sorted((alive | {index}) & (set(published) | {index}))
    leader = counted[0]
    names = {name for i in counted for name in published.get(i) or {}}
    heard = {}
    for name in sorted(names):
        others = 0.0
        for i in counted:
            figure = (published.get(i) or {}).get(name) or {}
            if i != index and isinstance(figure.get("in_flight"), (int, float)):
                others += max(0.0, float(figure["in_flight"]))
        lead = (published.get(leader) or {}).get(name) or {}
        desired = lead.get("desired") if leader != index else None
        heard[name] = {
            "others_in_flight": round(others, 3),
            "leader": leader,
            "leader_desired": desired if isinstance(desired, int) and not isinstance(desired, bool) else None,
            "hosts": len(counted),
        }
    return heard


class Liveness:
    """Which hosts' figures still move: a host is alive while its sequence number changed within STALE_S, as this
    process's clock sees it (the nodes' clocks are never compared)."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[object, float]] = {}  # index: (its last sequence, when it last changed)

    def alive(self, sequences: dict[int, object], now: float) -> set[int]:
        for index, seq in sequences.items():
            if index not in self.seen or self.seen[index][0] != seq:
                self.seen[index] = (seq, now)
        for index in set(self.seen) - set(sequences):
            del self.seen[index]
        return {i for i, (_, changed) in self.seen.items() if now - changed <= STALE_S}


class LoadShare:
    """The sharing of one host (index `index` of the endpoint): `run` in a thread of the host's actor."""

    def __init__(self, owner: str, endpoint: str, index: int, token: str):
        self.owner, self.endpoint, self.index, self.token = owner, endpoint, index, token
        self.seq = 0
        self.heard: dict[str, dict] = {}
        self.liveness = Liveness()
        self.stopping = False

    def step(self, host) -> dict[str, dict]:
        """One exchange: tell `host` (a HostClient) what was heard, publish its own figures, read the others'."""
        from ray.experimental import internal_kv as kv

        own = host.share_load(self.heard)
        self.seq += 1
        key = f"{prefix(self.owner, self.endpoint)}{self.index}"
        entry = {"seq": f"{self.token}:{self.seq}", "deployments": own}
        kv._internal_kv_put(key, json.dumps(entry), overwrite=True, namespace=NAMESPACE)
        published, sequences = {}, {}
        for raw_key in kv._internal_kv_list(prefix(self.owner, self.endpoint), namespace=NAMESPACE):
            name = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            tail = name.rpartition("/")[2]
            raw = kv._internal_kv_get(raw_key, namespace=NAMESPACE)
            if not tail.isdigit() or not raw or int(tail) == self.index:
                continue
            try:
                found = json.loads(raw)
            except ValueError:
                continue
            if isinstance(found, dict) and isinstance(found.get("deployments"), dict):
                published[int(tail)], sequences[int(tail)] = found["deployments"], found.get("seq")
        alive = self.liveness.alive(sequences, time.monotonic())
        self.heard = combine(self.index, {**published, self.index: own}, alive)
        return self.heard

    def run(self, host_info) -> None:
        """Share until `stopping`; `host_info()` is the running host's HostClient, None while it does not run."""
        problem = ""
        while not self.stopping:
            host = host_info()
            try:
                if host is not None:
                    self.step(host)
                    problem = ""
            except Exception as e:  # the host is (re)starting, or the KV is busy: the next step tries again
                if f"{e}" != problem:
                    log.info("endpoint host %s-%d: load not shared: %s", self.endpoint, self.index, e)
                problem = f"{e}"
            time.sleep(SHARE_S)


def forget(owner: str, endpoint: str) -> None:
    """Remove the endpoint's hosts' figures (the endpoint is destroyed)."""
    from ray.experimental import internal_kv as kv

    kv._internal_kv_del(prefix(owner, endpoint), del_by_prefix=True, namespace=NAMESPACE)
