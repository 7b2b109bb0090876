"""Kernel wait sums -> runqueue_pressure events, on plain values."""

import pytest

from collectors.ebpf.pressure import pressure_events, totals_from_percpu

S, E = 1_000_000_000, 1_100_000_000


def test_percpu_values_become_scope_cpu_totals_without_zeros():
    got = totals_from_percpu([(1, [(0, 0), (5_000, 3)]), (2, [(7, 1), (0, 0)])])
    assert got == {(1, 1): (5_000, 3), (2, 0): (7, 1)}


def test_window_event_is_the_growth_since_the_last_read():
    prev = {(1, 1): (10_000_000, 100), (1, 0): (5, 1)}
    cur = {(1, 1): (34_000_000, 160), (1, 0): (5, 1), (2, 1): (1_000_000, 4)}
    evs = pressure_events(prev, cur, S, E, {1: "/cpu-test/worker"})
    assert [(e.subject, e.attributes["cpu"], e.attributes["waits"]) for e in evs] == [
        ("cgroup:/cpu-test/worker", 1, 60), ("node", 1, 4)]
    first = evs[0]
    assert first.kind == "runqueue_pressure" and first.magnitude == pytest.approx(0.024)
    assert (first.start_ns, first.end_ns) == (S, E) and first.attributes["aggregate"] is True


def test_no_growth_no_event_and_recreated_entries_count_from_zero():
    assert pressure_events({(1, 1): (9, 2)}, {(1, 1): (9, 2)}, S, E, {1: "/a"}) == []
    (ev,) = pressure_events({(1, 1): (9_000, 20)}, {(1, 1): (3_000, 2)}, S, E, {1: "/a"})
    assert ev.magnitude == pytest.approx(3e-6) and ev.attributes["waits"] == 2


def test_empty_window_yields_nothing():
    assert pressure_events({}, {(1, 1): (9, 2)}, E, E, {1: "/a"}) == []
