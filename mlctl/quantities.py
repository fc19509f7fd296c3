"""Quantities: Kubernetes resource quantities (`100m`, `0.5`, `512Mi`, `0.5Gi`, `1G`, `1e3`) read as CPUs
and bytes, as the Kubernetes API reads them (k8s.io/apimachinery `resource.Quantity`). Pure.

The grammar is Kubernetes':
    quantity ::= signed-number suffix
    suffix   ::= binary-SI (Ki Mi Gi Ti Pi Ei) | decimal-SI (m, none, k M G T P E) | exponent (e or E, signed integer)
A YAML number (`cpu: 1`, `cpu: 0.5`, `memory: 1073741824`) is the same quantity without a suffix. Negative
values are refused (a resource is never negative). Memory is rounded up to a whole byte, as Kubernetes does;
CPUs keep their fraction (Kubernetes rounds below 1m up to 1m, which `cpus` also does).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL: dict[str, Fraction | int] = {
    "m": Fraction(1, 1000),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?\d+)|(?P<decimal>[mkMGTPE]?))"
)
MAX_EXPONENT = 30  # beyond 1e30 nothing is a resource; refused before a huge integer is built

EXAMPLES = "like 500m, 0.5, 2 for CPUs; 512Mi, 0.5Gi, 1G, 1e9 for memory"


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity, or not one a resource can have; the message says which and
    what would be one."""


def parse(value: object) -> Fraction:
    """Pure: the exact value of a quantity (a string with an optional suffix, or a YAML number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QuantityError(f"{value!r} is not a quantity: write a number or a string {EXAMPLES}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"{value!r} is not a quantity: write a finite number {EXAMPLES}")
        amount = Fraction(str(value))  # 0.1 as written, not its binary neighbour
    elif isinstance(value, int):
        amount = Fraction(value)
    else:
        amount = _parse_text(value)
    if amount < 0:
        raise QuantityError(f"{value!r} is negative: a resource quantity is 0 or more")
    return amount


def _parse_text(text: str) -> Fraction:
    """Pure: the exact value of a quantity written as a string."""
    match = _QUANTITY.fullmatch(text.strip()) if len(text) <= 64 else None
    if match is None:
        raise QuantityError(
            f"{text!r} is not a Kubernetes quantity: write a number with an optional suffix, {EXAMPLES}"
        )
    number = Fraction(match["number"])
    if match["binary"]:
        return number * BINARY[match["binary"]]
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > MAX_EXPONENT:
            raise QuantityError(
                f"{text!r}: the exponent {exponent} is out of range (at most {MAX_EXPONENT} either way)"
            )
        return number * (Fraction(10**exponent) if exponent >= 0 else Fraction(1, 10**-exponent))
    return number * DECIMAL[match["decimal"] or ""]


def cpus(value: object) -> float:
    """Pure: CPUs of a quantity (`100m` -> 0.1, `2` -> 2.0); a nonzero amount under 1m counts as 1m."""
    amount = parse(value)
    if 0 < amount < Fraction(1, 1000):
        amount = Fraction(1, 1000)
    return float(amount)


def memory_bytes(value: object) -> int:
    """Pure: bytes of a quantity (`512Mi` -> 536870912, `1G` -> 10**9, `1e3` -> 1000), rounded up."""
    return math.ceil(parse(value))


def gpus(value: object) -> int:
    """Pure: a count of GPUs (`nvidia.com/gpu`), which Kubernetes requires to be a whole number."""
    amount = parse(value)
    if amount.denominator != 1:
        raise QuantityError(
            f"{value!r} is not a whole number of GPUs: a GPU is not shared by quantity (write 1, 2, ...)"
        )
    return int(amount)


def describe_cpus(value: float) -> str:
    """Pure: "0.5 CPU", "2 CPUs", "100m CPU" for messages."""
    if value < 1 and round(value * 1000) == value * 1000:
        return f"{round(value * 1000)}m CPU"
    return f"{value:g} CPU" + ("s" if value != 1 else "")


def describe_bytes(value: int) -> str:
    """Pure: "200Mi", "1.5Gi", "1000 bytes": the largest binary unit that keeps one decimal, for messages."""
    for suffix, size in reversed(BINARY.items()):
        if value >= size:
            shown = value / size
            return f"{shown:.1f}".removesuffix(".0") + suffix
    return f"{value} bytes"
