"""instance_types.py: Azure VM sizes of managed online endpoints, looked up and fitted (literal expectations)."""

from __future__ import annotations

from fractions import Fraction

from mlctl.instance_types import TABLE, InstanceType, lookup, smallest_fitting


def test_lookup_is_case_insensitive_and_knows_the_listed_families():
    assert lookup("Standard_DS3_v2") == InstanceType("Standard_DS3_v2", 4, 14, Fraction(0))
    assert lookup("STANDARD_DS3_V2") is lookup("standard_ds3_v2") is lookup(" Standard_DS3_v2 ")
    assert lookup("Standard_DS1_v2") == InstanceType("Standard_DS1_v2", 1, 3.5)
    assert lookup("Standard_F4s_v2") == InstanceType("Standard_F4s_v2", 4, 8)
    assert lookup("Standard_E64s_v3") == InstanceType("Standard_E64s_v3", 64, 432)
    assert lookup("Standard_D8as_v4") == InstanceType("Standard_D8as_v4", 8, 32)
    assert lookup("Standard_FX12mds") == InstanceType("Standard_FX12mds", 12, 252)
    assert lookup("Standard_NC6s_v3") == InstanceType("Standard_NC6s_v3", 6, 112, Fraction(1))
    assert lookup("Standard_NC4as_T4_v3") == InstanceType("Standard_NC4as_T4_v3", 4, 28, Fraction(1))
    assert lookup("Standard_NC24ads_A100_v4") == InstanceType("Standard_NC24ads_A100_v4", 24, 220, Fraction(1))
    assert lookup("Standard_NC80adis_H100_v5") == InstanceType("Standard_NC80adis_H100_v5", 80, 640, Fraction(2))
    assert lookup("Standard_NV6ads_A10_v5").gpus == Fraction(1, 6)
    assert lookup("Standard_B1s") is None and lookup("") is None


def test_the_table_names_each_size_once_and_holds_the_sku_list():
    names = [t.name.lower() for t in TABLE]
    assert len(names) == len(set(names)) == 85  # every row of the SKU list
    assert {t.name for t in TABLE if t.name.startswith("Standard_NC")} == {
        "Standard_NC4as_T4_v3",
        "Standard_NC8as_T4_v3",
        "Standard_NC16as_T4_v3",
        "Standard_NC64as_T4_v3",
        "Standard_NC6s_v2",
        "Standard_NC12s_v2",
        "Standard_NC24s_v2",
        "Standard_NC6s_v3",
        "Standard_NC12s_v3",
        "Standard_NC24s_v3",
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        "Standard_NC96ads_A100_v4",
        "Standard_NC40ads_H100_v5",
        "Standard_NC80adis_H100_v5",
    }


def test_smallest_fitting():
    assert smallest_fitting(1, 1).name == "Standard_DS1_v2"
    assert smallest_fitting(0.5, 3.5).name == "Standard_DS1_v2"
    assert smallest_fitting(2, 4).name == "Standard_F2s_v2"  # fewest vCPUs, then least memory
    assert smallest_fitting(2, 7.5).name == "Standard_D2a_v4"  # 8 GiB; D2a_v4 before D2as_v4 by name
    assert smallest_fitting(2, 10).name == "Standard_E2s_v3"
    assert smallest_fitting(4, 100).name == "Standard_FX12mds"
    assert smallest_fitting(1, 1, gpus=1).name == "Standard_NC4as_T4_v3"
    assert smallest_fitting(1, 1, gpus=0.5).name == "Standard_NV18ads_A10_v5"
    assert smallest_fitting(8, 64, gpus=2).name == "Standard_NC12s_v2"
    assert smallest_fitting(1, 2000) is None
    assert smallest_fitting(200, 1) is None
    assert smallest_fitting(1, 1, gpus=16) is None
