"""The pure parts of `mlctl profile`: percentiles, CPU between usage samples, the basis a recommendation
rests on, its arithmetic, and the flag parsers' bounds."""

import math

import pytest

from mlctl.errors import MlctlError
from mlctl.profiling.figures import Step, cpu_seconds_used, percentile
from mlctl.profiling.recommendation import HEADROOM, recommend
from mlctl.profiling.settings import parse_concurrency, parse_duration
from mlctl.runtime.contract import InstanceUsage

GIB = 1024**3


def step(c, rps, p99, errors=None, instances=1, cores=0.5, memory=GIB // 2):
    mean = c / rps * 1000
    return Step(
        concurrency=c,
        requests=int(rps * 10),
        errors=errors or {},
        duration_s=10.0,
        rps=rps,
        mean_ms=mean,
        p50_ms=mean,
        p90_ms=p99 * 0.8,
        p99_ms=p99,
        max_ms=p99 * 1.2,
        instances=instances,
        cpu_cores=cores * instances,
        peak_memory_bytes=memory,
    )


def test_percentile_is_nearest_rank():
    xs = list(range(1, 101))
    assert (percentile(xs, 50), percentile(xs, 90), percentile(xs, 99), percentile(xs, 100)) == (50, 90, 99, 100)
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) == 0.0


def test_cpu_between_samples_counts_a_restarted_instance_from_zero():
    before = [InstanceUsage(0, 10.0, 1), InstanceUsage(1, 50.0, 1)]
    after = [InstanceUsage(0, 12.5, 1), InstanceUsage(1, 3.0, 1), InstanceUsage(2, 1.0, 1)]
    assert cpu_seconds_used(before, after) == pytest.approx(2.5 + 3.0 + 1.0)


def test_the_basis_is_the_knee_and_the_counts_hold_the_target():
    steps = [step(1, 100, 10), step(4, 380, 15), step(16, 390, 80)]
    rec = recommend(steps, target_rps=1000)
    assert rec.basis_concurrency == 4  # 380 is within 5% of 390: 16 only queues
    assert rec.instance_count == math.ceil(1000 * HEADROOM / 380) == 4
    assert rec.instance_count * 380 >= 1000
    assert rec.max_concurrent_requests_per_instance == 4
    assert rec.cpu_cores == pytest.approx(0.7) and rec.memory_gib == pytest.approx(0.7)
    assert rec.instance_type == "Standard_DS1_v2"
    assert any("instance_count = ceil(1000.0 req/s (--target-rps) x 1.25" in line for line in rec.arithmetic)


def test_a_p99_target_narrows_the_basis_and_says_when_none_meets_it():
    steps = [step(1, 100, 10), step(4, 380, 15), step(16, 390, 80)]
    assert recommend(steps, target_p99_ms=12).basis_concurrency == 1
    missed = recommend(steps, target_p99_ms=5)
    assert missed.meets_target_p99 is False and missed.basis_concurrency == 1
    assert any("no concurrency kept p99 within 5 ms" in n for n in missed.notes)


def test_steps_with_errors_are_no_basis_and_per_instance_figures_divide_by_instances():
    steps = [
        step(2, 200, 10, instances=2, cores=1.5, memory=3 * GIB),
        step(8, 900, 20, errors={"HTTP 429": 500}, instances=2),
    ]
    rec = recommend(steps)
    assert rec.basis_concurrency == 2 and rec.max_concurrent_requests_per_instance == 1
    assert rec.instance_count == math.ceil(200 * HEADROOM / 100) == 3
    assert rec.cpu_cores == pytest.approx(1.9) and rec.instance_type == "Standard_F2s_v2"  # 2 vCPUs, 4 GiB >= 3.75
    assert any("HTTP 429" in n for n in rec.notes)
    assert recommend([step(1, 10, 5, errors={"timeout": 100})]) is None


def test_flag_parsers_accept_their_forms_and_refuse_the_rest():
    assert parse_concurrency("16, 1,4,4") == [1, 4, 16]
    assert (parse_duration("20s"), parse_duration("500ms"), parse_duration("2m"), parse_duration("3")) == (
        20,
        0.5,
        120,
        3,
    )
    for bad in ("1,x", "", "1,,2", "-1", "257", ",".join(map(str, range(1, 12)))):
        with pytest.raises(MlctlError):
            parse_concurrency(bad)
    for bad in ("20x", "0s", "121s", "s", "1h"):
        with pytest.raises(MlctlError):
            parse_duration(bad)
