import math

import pytest

from collectors.ebpf.histogram import MAX_SLOT, MIN_SLOT, log2_histogram, slot_of, slot_upper_bound


@pytest.mark.parametrize("value", [0, 1, 2, 3, 4, 1000, 20_000_000, 2**31 - 1, 2**32, 2**40 + 5])
def test_value_lies_within_its_slot_bounds(value):
    slot = slot_of(value)
    # bcc's bpf_log2l: slot i holds [2^(i-1), 2^i - 1]; 0 shares slot 1 with 1.
    assert value <= (1 << slot) - 1
    assert value == 0 or value >= 1 << (slot - 1)


def test_upper_bound_is_two_to_the_slot_minus_one_not_the_lower_edge():
    assert slot_upper_bound(25) == (2**25 - 1) / 1e9
    assert slot_upper_bound(1, per_second=1e6) == 1e-6
    with pytest.raises(ValueError):
        slot_upper_bound(-1)


def test_twenty_milliseconds_lands_in_the_bucket_that_contains_it():
    ns = 20_000_000
    h = log2_histogram({slot_of(ns): 1}, ns)
    first = next(b for b, c in h.buckets if c == 1)
    prev = max(b for b, c in h.buckets if c == 0)
    assert prev < 0.02 <= first
    assert h.sum == pytest.approx(0.02)


def test_buckets_are_cumulative_fixed_and_end_in_inf():
    slots = {1: 5, MIN_SLOT - 1: 2, MIN_SLOT: 3, 20: 4, MAX_SLOT + 3: 7}
    h = log2_histogram(slots, 123)
    bounds = [b for b, _ in h.buckets]
    counts = [c for _, c in h.buckets]
    assert bounds[-1] == math.inf
    assert len(bounds) == MAX_SLOT - MIN_SLOT + 2
    assert counts == sorted(counts)
    assert counts[0] == 5 + 2 + 3  # lower slots fold into the first bucket
    assert counts[-2] == 5 + 2 + 3 + 4  # above the top bound only +Inf sees it
    assert h.count == 21
    # Same bucket set whatever the data, so series are stable across scrapes.
    assert [b for b, _ in log2_histogram({}, 0).buckets] == bounds
