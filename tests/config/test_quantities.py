"""Kubernetes quantities (mlctl/quantities.py) and an instance's requests/limits (mlctl/sizing.py)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlctl import quantities
from mlctl.quantities import QuantityError
from mlctl.sizing import Amounts, Sizing, read_resources

MI = 2**20


@pytest.mark.parametrize(
    "text, value",
    [
        ("100m", 0.1),
        ("0.5", 0.5),
        ("2", 2.0),
        ("1500m", 1.5),
        (".5", 0.5),
        ("1.", 1.0),
        ("1e0", 1.0),
        ("1k", 1000.0),
        (1, 1.0),
        (0.25, 0.25),
        ("0", 0.0),
        ("0.0001", 0.001),  # under 1m counts as 1m, as Kubernetes rounds
    ],
)
def test_cpus(text, value):
    assert quantities.cpus(text) == value


@pytest.mark.parametrize(
    "text, value",
    [
        ("512Mi", 512 * MI),
        ("200Mi", 200 * MI),
        ("0.5Gi", 512 * MI),
        ("1G", 10**9),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1Ki", 1024),
        ("128974848", 128974848),
        ("129e6", 129000000),
        ("123Mi", 123 * MI),
        ("128974848000m", 128974848),
        ("1.5", 2),  # rounded up to a whole byte
        (1073741824, 2**30),
        ("+1M", 10**6),
        (" 1Gi ", 2**30),
    ],
)
def test_memory_bytes(text, value):
    assert quantities.memory_bytes(text) == value


@pytest.mark.parametrize(
    "bad, words",
    [
        ("1GB", "not a Kubernetes quantity"),
        ("abc", "not a Kubernetes quantity"),
        ("", "not a Kubernetes quantity"),
        ("1 Gi", "not a Kubernetes quantity"),
        ("1gi", "not a Kubernetes quantity"),
        ("-1", "negative"),
        (-2, "negative"),
        ("1e999", "out of range"),
        (True, "not a quantity"),
        (None, "not a quantity"),
        ([1], "not a quantity"),
        (float("inf"), "finite"),
        ("1" * 100, "not a Kubernetes quantity"),
    ],
)
def test_bad_quantities_say_what_would_be_one(bad, words):
    with pytest.raises(QuantityError, match=words) as e:
        quantities.memory_bytes(bad)
    assert "512Mi" in str(e.value) or "negative" in str(e.value) or "range" in str(e.value)


def test_gpus_are_whole():
    assert quantities.gpus("2") == 2
    assert quantities.gpus(1) == 1
    with pytest.raises(QuantityError, match="whole number of GPUs"):
        quantities.gpus("500m")


@given(st.integers(min_value=0, max_value=2**40), st.sampled_from(sorted(quantities.BINARY)))
def test_binary_suffixes_multiply_exactly(n, suffix):
    assert quantities.memory_bytes(f"{n}{suffix}") == n * quantities.BINARY[suffix]


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(quantities.DECIMAL)))
def test_decimal_suffixes_agree_with_exponents(n, suffix):
    exponent = {"m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}[suffix]
    assert quantities.parse(f"{n}{suffix}") == quantities.parse(f"{n}e{exponent}") == n * Fraction(10) ** exponent


@given(st.integers(min_value=0, max_value=10**6))
def test_millicpus_read_as_their_fraction(m):
    assert quantities.cpus(f"{m}m") == pytest.approx(max(m, 1 if m else 0) / 1000)


@given(st.text(max_size=20))
def test_any_text_is_a_quantity_or_a_quantity_error(text):
    try:
        value = quantities.parse(text)
    except QuantityError as e:
        assert str(e)
    else:
        assert value >= 0


@given(st.integers(min_value=0, max_value=2**62))
def test_describe_bytes_stays_close(n):
    shown = quantities.describe_bytes(n)
    if shown.endswith(" bytes"):
        assert int(shown.split()[0]) == n
    else:
        assert abs(quantities.memory_bytes(shown) - n) <= n * 0.05 + 1


def test_read_resources_normalizes_azure_keys():
    sizing, problems = read_resources(
        {"requests": {"cpu": "100m", "memory": "0.1Gi"}, "limits": {"memory": "200Mi", "nvidia.com/gpu": 1}}
    )
    assert problems == []
    assert sizing.limits == Amounts(None, 200 * MI, 1)
    assert sizing.requests.cpu == 0.1
    assert sizing.requests.gpu == 1  # left out: its limit, as Kubernetes defaults it


def test_a_request_left_out_is_its_limit():
    sizing, problems = read_resources({"limits": {"cpu": 2, "memory": "1Gi"}})
    assert problems == []
    assert sizing.requests == sizing.limits == Amounts(2.0, 2**30, None)
    assert Sizing.from_json(sizing.to_json()) == sizing
    assert sizing.limits.describe() == "2 CPUs, 1Gi of memory"


def test_resource_problems_name_their_field():
    _, problems = read_resources(
        {
            "requests": {"cpu": "2", "memory": "lots", "ephemeral-storage": "1Gi"},
            "limits": {"cpu": "500m", "memory": 0},
            "claims": [],
        }
    )
    by_field = {".".join(p.field): p.message for p in problems}
    assert by_field["claims"] == "unknown field 'claims' in 'resources'"
    assert "not a Kubernetes quantity" in by_field["requests.memory"]
    assert by_field["requests.ephemeral-storage"] == "unknown resource 'ephemeral-storage' in 'resources.requests'"
    assert by_field["limits.memory"] == "resources.limits.memory is 0: nothing could run"
    assert by_field["requests.cpu"] == "requests.cpu (2 CPUs) is above limits.cpu (500m CPU)"


def test_no_resources_is_an_empty_sizing():
    assert read_resources(None) == (Sizing(), [])
    assert Sizing.of({"name": "blue"}).is_empty()
    assert read_resources("2Gi")[1][0].message == "'resources' is not a mapping"
