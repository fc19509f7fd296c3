"""Where an endpoint's in-cluster hosts run: one detached Ray placement group per endpoint, named
`mlctl-<owner>-<endpoint>-ingress` in Ray's namespace `mlctl`, STRICT_SPREAD, one bundle per host (a hundredth of a
CPU), each host's actor in its own bundle (ingresshosts.start).

Why a placement group: every host of an endpoint listens on the same port on its node's address, so two hosts on
one node cannot both serve. STRICT_SPREAD keeps each bundle on a node of its own, also when Ray places a bundle
again: when a node dies, Ray reschedules its bundle on an alive node that holds no other bundle of the group, and
the host's actor (restarted without limit) waits for that bundle: on a cluster with no such node it waits,
reported by `show` and as drift, until a node joins or rejoins, and then starts there. So hosts spread over a node
that rejoins without `apply`, and Ray stays the scheduler. A group is made with one bundle per alive node at most
(a STRICT_SPREAD group with more bundles than nodes is never placed): on a cluster of one node an endpoint gets one
host, and `apply` after the endpoint is recreated gives it more once there are more nodes.
"""

from __future__ import annotations

from mlctl.runtime.ray import apps, cluster

HOST_CPUS = 0.01  # what a host reserves: its bundle's resources (a bundle must hold some resource)


def group_name(owner: str, endpoint: str) -> str:
    """Pure: the name of an endpoint's hosts' placement group."""
    return f"{apps.endpoint_prefix(owner, endpoint)}ingress"


def find(owner: str, endpoint: str):
    """The endpoint's placement group, None when the cluster has none (this process is connected, namespace mlctl)."""
    from ray.util.placement_group import get_placement_group

    try:
        return get_placement_group(group_name(owner, endpoint))
    except ValueError:  # no group of that name
        return None


def ensure(owner: str, endpoint: str, count: int, timeout: float):
    """The endpoint's placement group, made when there is none (min(count, alive nodes) bundles, at least one) and
    placed; ClusterError when Ray does not place it within `timeout` s."""
    from ray.util.placement_group import placement_group

    group = find(owner, endpoint)
    if group is None:
        nodes = sum(1 for n in cluster.nodes() if n.get("Alive"))
        bundles = [{"CPU": HOST_CPUS} for _ in range(max(1, min(count, nodes)))]
        group = placement_group(
            bundles, strategy="STRICT_SPREAD", name=group_name(owner, endpoint), lifetime="detached"
        )
    if not group.wait(timeout):
        raise cluster.ClusterError(
            f"Ray did not place the endpoint hosts of {endpoint!r} within {timeout:.0f}s ({group.bundle_count} "
            f"bundle(s) of {HOST_CPUS} CPU, each on a node of its own)",
            detail="`ray status` shows the nodes and what they have free; each host needs a node of its own.",
        )
    return group


def strategy(group, index: int):
    """Pure: the scheduling strategy of host `index` of an endpoint: its own bundle of the group."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)


def remove(owner: str, endpoint: str) -> None:
    """Remove the endpoint's placement group (after its hosts' actors ended); nothing when there is none."""
    from ray.util.placement_group import remove_placement_group

    group = find(owner, endpoint)
    if group is not None:
        remove_placement_group(group)
