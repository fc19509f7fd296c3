"""Instance types: the Azure VM sizes a managed online deployment's `instance_type` names, with their
vCPUs, memory and GPUs, for runtimes that size instances like Azure (limits) and for conversions.

Source: the sizes are those of Azure Machine Learning's "Managed online endpoints SKU list"
(learn.microsoft.com/azure/machine-learning/reference-managed-online-endpoints-vm-sku-list),
which gives each size's family, vCPUs and GPUs; memory is from Azure's VM sizes documentation
(learn.microsoft.com/azure/virtual-machines/sizes) for the same sizes. The NVads A10 v5 sizes
have a fraction of one GPU (1/6, 1/3, 1/2).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class InstanceType:
    """One VM size: `name` as Azure spells it, `vcpus`, `memory_gib`, `gpus` (a fraction for partial GPUs)."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: Fraction = Fraction(0)


def _family(template: str, sizes) -> list[InstanceType]:
    """Pure: the sizes of one family, `template` holding `{}` for each size's number."""
    return [InstanceType(template.format(n), cpus, mem, Fraction(gpus)) for n, cpus, mem, gpus in sizes]


def _per_vcpu(template: str, vcpus, gib_per_vcpu: float) -> list[InstanceType]:
    """Pure: a family whose memory is a fixed multiple of its vCPUs (its size number is the vCPU count)."""
    return _family(template, [(n, n, n * gib_per_vcpu, 0) for n in vcpus])


TABLE: tuple[InstanceType, ...] = tuple(
    # general purpose
    _family("Standard_DS{}_v2", [(1, 1, 3.5, 0), (2, 2, 7, 0), (3, 4, 14, 0), (4, 8, 28, 0), (5, 16, 56, 0)])
    + _per_vcpu("Standard_D{}a_v4", (2, 4, 8, 16, 32, 48, 64, 96), 4)
    + _per_vcpu("Standard_D{}as_v4", (2, 4, 8, 16, 32, 48, 64, 96), 4)
    # compute optimized
    + _per_vcpu("Standard_F{}s_v2", (2, 4, 8, 16, 32, 48, 64, 72), 2)
    + _per_vcpu("Standard_FX{}mds", (4, 12, 24, 36, 48), 21)
    # memory optimized
    + _per_vcpu("Standard_E{}s_v3", (2, 4, 8, 16, 32, 48), 8)
    + _family("Standard_E{}s_v3", [(64, 64, 432, 0)])
    # storage optimized
    + _per_vcpu("Standard_L{}s_v2", (8, 16, 32, 48, 64, 80), 8)
    + _per_vcpu("Standard_L{}s_v3", (8, 16, 32, 48, 64, 80), 8)
    + _per_vcpu("Standard_L{}as_v3", (8, 16, 32, 48, 64, 80), 8)
    # GPU
    + _family("Standard_NC{}as_T4_v3", [(4, 4, 28, 1), (8, 8, 56, 1), (16, 16, 110, 1), (64, 64, 440, 4)])
    + _family("Standard_NC{}s_v2", [(6, 6, 112, 1), (12, 12, 224, 2), (24, 24, 448, 4)])
    + _family("Standard_NC{}s_v3", [(6, 6, 112, 1), (12, 12, 224, 2), (24, 24, 448, 4)])
    + _family("Standard_NC{}ads_A100_v4", [(24, 24, 220, 1), (48, 48, 440, 2), (96, 96, 880, 4)])
    + _family("Standard_NC{}_H100_v5", [("40ads", 40, 320, 1), ("80adis", 80, 640, 2)])
    + _family(
        "Standard_NV{}_A10_v5",
        [
            ("6ads", 6, 55, Fraction(1, 6)),
            ("12ads", 12, 110, Fraction(1, 3)),
            ("18ads", 18, 220, Fraction(1, 2)),
            ("36ads", 36, 440, 1),
            ("36adms", 36, 880, 1),
            ("72ads", 72, 880, 2),
        ],
    )
    + _family(
        "Standard_ND{}",
        [
            ("96asr_v4", 96, 900, 8),
            ("96amsr_A100_v4", 96, 1900, 8),
            ("40rs_v2", 40, 672, 8),
            ("96is_H100_v5", 96, 1900, 8),
            ("96isr_H100_v5", 96, 1900, 8),
        ],
    )
)

_BY_NAME = {t.name.lower(): t for t in TABLE}


def lookup(name: str) -> InstanceType | None:
    """Pure: the VM size called `name` (any letter case, as Azure accepts it), or None."""
    return _BY_NAME.get(name.strip().lower())


def smallest_fitting(cpus: float, memory_gib: float, gpus: float = 0) -> InstanceType | None:
    """Pure: the smallest size with at least `cpus` vCPUs, `memory_gib` GiB and `gpus` GPUs, or None.
    Smallest means fewest GPUs, then fewest vCPUs, then least memory (then the name, for ties)."""
    fitting = [t for t in TABLE if t.vcpus >= cpus and t.memory_gib >= memory_gib and t.gpus >= gpus]
    return min(fitting, key=lambda t: (t.gpus, t.vcpus, t.memory_gib, t.name), default=None)
