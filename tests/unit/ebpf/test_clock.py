import time

from collectors.ebpf.clock import MonotonicClock, measure_offset_ns


def test_offset_maps_a_monotonic_reading_to_the_realtime_of_that_instant():
    offset = measure_offset_ns()
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    real = time.clock_gettime_ns(time.CLOCK_REALTIME)
    assert abs(mono + offset - real) < 5_000_000  # within 5 ms, whatever the scheduler does


def test_clock_remeasures_only_when_due():
    c = MonotonicClock(remeasure_s=3600)
    c.offset_ns = 0  # pretend a stale offset
    c.maybe_remeasure()
    assert c.offset_ns == 0
    c.remeasure_s = 0
    c.maybe_remeasure()
    assert c.to_realtime(0) == c.offset_ns != 0
