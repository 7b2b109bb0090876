"""bcc log2 histograms as Prometheus histograms.

bcc's bpf_log2l(v) is floor(log2 v) + 1 (and 1 for v = 0), so slot i holds the
integer values [2^(i-1), 2^i - 1]. Its upper bound is therefore 2^i - 1 base units,
not 2^(i-1) (the off-by-one of cloudflare/ebpf_exporter #488).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from agent.samples import HistogramValue

SLOTS = 64


def slot_upper_bound(slot: int, per_second: float = 1e9) -> float:
    """Inclusive upper bound of log2 slot `slot`, in seconds, for a base unit of
    1/per_second s (dividing keeps the decimal bounds exact, e.g. 0.000131071)."""
    if slot < 0:
        raise ValueError(f"slot must be >= 0, got {slot}")
    return ((1 << slot) - 1) / per_second


def slot_of(value: int) -> int:
    """The slot bcc's bpf_log2l puts an integer value in (for tests and docs)."""
    if value < 0:
        raise ValueError(f"value must be >= 0, got {value}")
    hi = value >> 32
    if hi:
        return min(hi.bit_length() - 1 + 33, SLOTS - 1)
    return max(value.bit_length() - 1, 0) + 1


# Exported bucket range: 2^10 - 1 ns (about 1 us) to 2^36 - 1 ns (about 69 s). A
# fixed set keeps every series' buckets identical across scrapes, as Prometheus
# expects; lower slots fold into the first bucket, higher ones into +Inf only.
MIN_SLOT = 10
MAX_SLOT = 36


def log2_histogram(
    slots: Mapping[int, int], sum_base: float, per_second: float = 1e9,
    min_slot: int = MIN_SLOT, max_slot: int = MAX_SLOT,
) -> HistogramValue:
    """Cumulative Prometheus buckets (seconds) from per-slot counts of a bcc log2 histogram."""
    buckets: list[tuple[float, float]] = []
    cum = sum(c for s, c in slots.items() if s < min_slot)
    for s in range(min_slot, max_slot + 1):
        cum += slots.get(s, 0)
        buckets.append((slot_upper_bound(s, per_second), float(cum)))
    total = sum(slots.values())
    buckets.append((math.inf, float(total)))
    return HistogramValue(buckets=buckets, sum=sum_base / per_second)
