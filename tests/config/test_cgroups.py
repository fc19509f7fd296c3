"""Which cgroup holds a local instance's limits (mlctl/runtime/kit/cgroups.py), read from /proc/self/cgroup and a
cgroup file system laid out in a folder as the kernel lays out each kind (v2 alone, the v1/v2 hybrid of the CI
machine, v1 alone), and the files each limit goes to. The machine's own cgroups are used for real in
tests/corpus/test_kubernetes_resources.py."""

from __future__ import annotations

from pathlib import Path

from mlctl.runtime.kit import cgroups
from mlctl.runtime.kit.cgroups import Hierarchy
from mlctl.sizing import Amounts


def layout(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_cgroup_v2_alone(tmp_path):
    root = layout(tmp_path, {"cgroup.controllers": "cpu memory io", "user.slice/app/cgroup.controllers": "cpu memory"})
    found = cgroups.own_hierarchies("0::/user.slice/app\n", root)
    assert found == {
        "memory": Hierarchy(2, "memory", root / "user.slice/app"),
        "cpu": Hierarchy(2, "cpu", root / "user.slice/app"),
    }


def test_the_hybrid_uses_v1_for_what_the_unified_hierarchy_lacks(tmp_path):
    root = layout(
        tmp_path,
        {
            "unified/cgroup.controllers": "hugetlb",
            "unified/cgroup.procs": "",
            "memory/process_api/abc/memory.limit_in_bytes": "9223372036854771712",
            "cpu/cpu.shares": "1024",
        },
    )
    text = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n"
    assert cgroups.own_hierarchies(text, root) == {
        "memory": Hierarchy(1, "memory", root / "memory/process_api/abc"),
        "cpu": Hierarchy(1, "cpu", root / "cpu"),
    }


def test_v1_alone_with_cpu_and_cpuacct_mounted_together(tmp_path):
    root = layout(tmp_path, {"memory/memory.limit_in_bytes": "1", "cpu,cpuacct/cpu.shares": "1024"})
    found = cgroups.own_hierarchies("5:memory:/a\n3:cpu,cpuacct:/b\n", root)
    assert found == {
        "memory": Hierarchy(1, "memory", root / "memory/a"),
        "cpu": Hierarchy(1, "cpu", root / "cpu,cpuacct/b"),
    }


def test_no_controller_anywhere_is_said(tmp_path):
    assert cgroups.own_hierarchies("0::/\n", layout(tmp_path, {"cgroup.controllers": "io"})) == {}
    assert "no memory cgroup controller" in cgroups.why_not(None)


def test_each_limit_and_reservation_goes_to_its_file():
    limits, requests = Amounts(0.2, 200 * 2**20), Amounts(0.1, 100 * 2**20)
    v2, v1 = Path("/g"), Path("/g")
    assert cgroups._settings(Hierarchy(2, "memory", v2), limits, requests) == {
        "memory.max": str(200 * 2**20),
        "memory.swap.max": "0",
        "memory.low": str(100 * 2**20),
    }
    assert cgroups._settings(Hierarchy(2, "cpu", v2), limits, requests) == {
        "cpu.max": "20000 100000",
        "cpu.weight": "10",
    }
    assert cgroups._settings(Hierarchy(1, "memory", v1), limits, requests) == {
        "memory.limit_in_bytes": str(200 * 2**20),
        "memory.memsw.limit_in_bytes": str(200 * 2**20),
        "memory.soft_limit_in_bytes": str(100 * 2**20),
    }
    assert cgroups._settings(Hierarchy(1, "cpu", v1), limits, requests) == {
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "20000",
        "cpu.shares": "102",
    }
    assert cgroups._settings(Hierarchy(1, "cpu", v1), Amounts(memory=1), Amounts(memory=1)) == {}


def test_a_hosts_parent_group_weighs_as_the_machines_cpus():
    """Instances' groups sit in it, so a small request is weighed against other instances, not against every task
    of the host's own group (Kubernetes' kubepods)."""
    assert cgroups.parent_weight(Hierarchy(1, "cpu", Path("/g")), 2) == {"cpu.shares": "2048"}
    assert cgroups.parent_weight(Hierarchy(2, "cpu", Path("/g")), 2) == {"cpu.weight": "200", "memory.low": "max"}
    assert cgroups.parent_weight(Hierarchy(2, "cpu", Path("/g")), 512)["cpu.weight"] == "10000"
    # v1's memory hierarchy has no weights: its groups stay beside the host's
    assert cgroups.instances_parent(Hierarchy(1, "memory", Path("/nonexistent/g"))) == Path("/nonexistent/g")
    # a parent that cannot be made: the groups are made beside the host's tasks, as before
    assert cgroups.instances_parent(Hierarchy(1, "cpu", Path("/nonexistent/g"))) == Path("/nonexistent/g")
