"""Autoscaling in a real endpoint host (real scoring processes): scale to zero and the cold start (200 within
the timeout, 408 past it, with uvloop and without); the CPU the instances used as the metric; a scale-up the
machine cannot hold, refused. Order of events and generous deadlines, never timings. (The issue's load ramp, up
at once and back to 1 after the window with no failed request, /metrics' counts and a new range in place:
through the CLI, tests/e2e/test_autoscale.py.)"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import time

import aiohttp
import pytest

from hosttools import body, sample, scrape, send, wait_until


LIGHT = """\
import os, time

def init():
    time.sleep(float(os.environ.get("INIT_SLEEP_S", "0")))

def run(raw_data):
    if os.environ.get("BURN_S"):  # CPU-bound work
        end = time.time() + float(os.environ["BURN_S"])
        while time.time() < end:
            pass
    return {"ok": True}
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """No model to train: the light score.py loads none (tests/host/conftest.py's model_dir fits a scikit-learn one)."""
    d = tmp_path_factory.mktemp("nomodel")
    (d / "README").write_text("no model: score.py here loads none\n")
    d.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """A scoring script that imports nothing heavy: the tests here start many instances."""
    d = tmp_path_factory.mktemp("light")
    (d / "score.py").write_text(LIGHT)
    d.chmod(0o755)  # pytest makes it 0700; as root, instances run as their own uid (tests/host/conftest.py)
    return d


def ranged(host, name, code, *, lo=1, hi=4, window=3, target=50, polling=1, cpu=None, **kw) -> dict:
    spec = host.spec(name, **kw)
    spec["code_dir"] = str(code)
    spec["scale_settings"] = {
        **({"cpu_request": cpu} if cpu else {}),
        "type": "target_utilization",
        "min_instances": lo,
        "max_instances": hi,
        "target_utilization_percentage": target,
        "polling_interval": polling,
        "stabilization_window": window,
    }
    return spec


async def _ramp(url: str, headers: dict, phases, cap: int = 4000, until=None) -> list[int]:
    """Each phase (concurrency, seconds) of keep-alive clients sending back to back; at most `cap` requests, and
    none once `until()` (checked every 0.2 s, in a thread) is true."""
    statuses: list[int] = []
    done = asyncio.Event()

    async def watch():
        while until is not None and not await asyncio.to_thread(until):
            await asyncio.sleep(0.2)
        done.set()

    watcher = asyncio.create_task(watch()) if until is not None else None
    async with aiohttp.ClientSession() as session:
        for concurrency, seconds in phases:
            stop_at = time.monotonic() + seconds

            async def worker():
                while time.monotonic() < stop_at and len(statuses) < cap and not done.is_set():
                    async with session.post(url, data=body(), headers=headers) as r:
                        await r.read()
                        statuses.append(r.status)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    if watcher is not None:
        watcher.cancel()
    return statuses


def decisions(host, name: str) -> list[tuple[int, int]]:
    """The autoscaler's changes of `name` in host.log, in order: [(from, to)]."""
    return [(int(a), int(b)) for a, b in re.findall(rf"autoscale {name}: (\d+) -> (\d+): ", host.log())]


LOOPS = ["uvloop", "asyncio"] if importlib.util.find_spec("uvloop") else ["asyncio"]


def test_scale_to_zero_answers_the_first_request_within_its_timeout_and_408_past_it(
    make_host, light, monkeypatch, tmp_path
):
    """On two hosts side by side, with uvloop and without (the waiting request wakes the autoscaler on either)."""
    hosts = {}
    for mode in LOOPS:
        monkeypatch.setenv("MLCTL_HOST_LOOP", mode)
        hosts[mode] = host = make_host(data_dir=tmp_path / mode)
        host.assert_loop(mode)
        cold = ranged(host, "cold", light, lo=0, hi=2, window=2, timeout_ms=30000)
        short = ranged(host, "short", light, lo=0, hi=2, window=2, timeout_ms=400, env={"INIT_SLEEP_S": "1"})
        for spec in (cold, short):
            host.client.create_deployment(spec, timeout=60)
        host.client.set_traffic({"cold": 100})

    def idle(host) -> bool:
        ds = host.client.status()["deployments"]
        return all(ds[n]["state"] == "idle" and not ds[n]["instances"] for n in ("cold", "short"))

    for mode, host in hosts.items():
        wait_until(lambda: idle(host), 30, f"both deployments scaled to zero ({mode})")
    for host in hosts.values():
        assert sample(scrape(host), "mlctl_instances_current", deployment="cold") == 0
        first = send(host.url + "/score", 1, headers=host.auth())
        assert first[0][0] == 200, first
        late = send(host.url + "/score", 1, headers=host.auth(**{"azureml-model-deployment": "short"}))
        assert late[0][0] == 408 and "scaled to zero" in late[0][1]["message"], late
    # the instance the late request woke goes on starting, and answers the next one
    for mode, host in hosts.items():
        up = lambda: host.client.status()["deployments"]["short"]["ready_instances"] == 1  # noqa: E731
        wait_until(up, 30, f"short is up ({mode})")
        again = send(host.url + "/score", 1, headers=host.auth(**{"azureml-model-deployment": "short"}))
        assert again[0][0] == 200, again
        assert decisions(host, "cold")[:2] == [(1, 0), (0, 1)]


def test_with_a_cpu_request_the_cpu_used_by_the_instances_scales_them(make_host, light):
    """resources.requests.cpu reaches the host as scale_settings.cpu_request: the instances' CPU seconds
    (/proc, the process and its workers) against it, not the requests in flight."""
    host = make_host()
    spec = ranged(host, "blue", light, hi=2, window=600, cpu=0.2, concurrent=4, env={"BURN_S": "0.05"})
    host.client.create_deployment(spec, timeout=60)
    host.client.set_traffic({"blue": 100})
    assert host.client.status()["deployments"]["blue"]["autoscale"]["metric"].startswith(
        "CPU (resources.requests.cpu 0.2 per instance)"
    )
    # one client at a time: in flight it is 1 of 4 slots (25 %, below the target), in CPU about 500 % of 0.2
    # (until the decision: at most 20 s, 500 requests)
    statuses = asyncio.run(
        _ramp(host.url + "/score", host.auth(), [(1, 20)], cap=500, until=lambda: decisions(host, "blue"))
    )
    assert set(statuses) == {200}
    changes = wait_until(lambda: decisions(host, "blue"), 30, "a decision")
    assert changes[0] == (1, 2), changes
    assert re.search(r"autoscale blue: 1 -> 2: up at once: \d+ % of CPU on 1 instance", host.log()), host.log()[-2000:]


def test_a_scale_up_the_machine_cannot_hold_is_logged_and_refused(make_host, light):
    """One instance reserves every CPU of this machine (its cpu_request): a second one does not fit."""
    host = make_host()
    cpus = len(os.sched_getaffinity(0))
    spec = ranged(
        host, "blue", light, hi=2, window=600, cpu=float(cpus), target=1, concurrent=4, env={"BURN_S": "0.05"}
    )
    host.client.create_deployment(spec, timeout=60)
    host.client.set_traffic({"blue": 100})
    refused = re.compile(r"autoscale blue: 1 -> 2 refused: ")  # (load until then: at most 20 s, 500 requests)
    statuses = asyncio.run(
        _ramp(host.url + "/score", host.auth(), [(1, 20)], cap=500, until=lambda: refused.search(host.log()))
    )
    assert set(statuses) == {200}
    line = wait_until(lambda: re.search(r"autoscale blue: 1 -> 2 refused: (.*)", host.log()), 30, "a refusal")
    assert f"reserve {cpus:g} CPU(s) (resources.requests.cpu) and {cpus:g} of the machine's {cpus}" in line[1]
    d = host.client.status()["deployments"]["blue"]
    assert d["instance_count"] == 1 and d["autoscale"]["decisions"][-1]["outcome"].startswith("refused: ")
