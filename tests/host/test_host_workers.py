"""An instance with WORKER_COUNT=2 (the deployment's environment variable): one pid to the host, two scoring
worker processes answering, the count and their CPU in the instance's status (what `mlctl show` prints)."""

from __future__ import annotations

import os
from pathlib import Path

from mlctl.commands.show import print_report

from hosttools import send


def children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_instance_with_two_workers_is_one_instance_to_the_host(make_host, capsys):
    host = make_host()
    host.create("blue", env={"WORKER_COUNT": "2"}, concurrent=4)
    host.create("green")
    host.client.set_traffic({"blue": 100})
    (inst,) = host.client.status()["deployments"]["blue"]["instances"]
    assert inst["workers"] == 2 and inst["ready"]
    workers = set(children(inst["pid"]))
    assert len(workers) == 2
    seen: set[int] = set()
    for _ in range(40):  # fresh connections from the host's pool reach either worker
        results = send(host.url + "/score", 20, concurrency=4, headers=host.auth())
        assert {r[0] for r in results} == {200}
        seen |= {r[1]["pid"] for r in results}
        if seen == workers:
            break
    assert seen <= workers and inst["pid"] not in seen
    workers_cpu = sum(cpu_seconds(pid) for pid in workers) + cpu_seconds(inst["pid"])
    after = host.client.status()["deployments"]
    (blue,) = after["blue"]["instances"]
    # the workers' CPU is the instance's (read later, so not less; within a clock tick of float sums)
    assert blue["pid"] == inst["pid"] and blue["cpu_seconds"] >= workers_cpu - 0.01
    assert after["green"]["instances"][0]["workers"] == 1

    print_report(
        {
            "name": "ep",
            "provisioning_state": "Succeeded",
            "scoring_uri": "u",
            "openapi_uri": "o",
            "auth_mode": "key",
            "traffic": {},
            "mirror_traffic": {},
            "deployments": {
                "blue": {
                    "state": "ready",
                    "ready_instances": 1,
                    "instance_count": 1,
                    "model": "m:1",
                    "environment": "e",
                    "status": "ready",
                    "instances": [blue],
                }
            },
        }
    )
    assert f"instance 0: pid {blue['pid']}, ready, 0 restart(s), 2 workers" in capsys.readouterr().out
