"""Monotonic (bpf_ktime_get_ns) to realtime conversion.

The offset is measured from a CLOCK_MONOTONIC / CLOCK_REALTIME / CLOCK_MONOTONIC
triple, taking the realtime reading against the midpoint of the two monotonic ones,
and re-measured periodically because NTP slews realtime against monotonic.
"""

from __future__ import annotations

import time


def measure_offset_ns(tries: int = 5) -> int:
    """realtime - monotonic, in ns, from the tightest of a few bracketed readings."""
    best: tuple[int, int] | None = None
    for _ in range(tries):
        m1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r = time.clock_gettime_ns(time.CLOCK_REALTIME)
        m2 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        width = m2 - m1
        offset = r - (m1 + m2) // 2
        if best is None or width < best[0]:
            best = (width, offset)
    assert best is not None
    return best[1]


class MonotonicClock:
    """Holds the current offset; `to_realtime` converts a BPF timestamp."""

    def __init__(self, remeasure_s: float = 60.0) -> None:
        self.remeasure_s = remeasure_s
        self.offset_ns = measure_offset_ns()
        self._measured_at = time.monotonic()

    def maybe_remeasure(self) -> None:
        if time.monotonic() - self._measured_at >= self.remeasure_s:
            self.offset_ns = measure_offset_ns()
            self._measured_at = time.monotonic()

    def to_realtime(self, mono_ns: int) -> int:
        return mono_ns + self.offset_ns
