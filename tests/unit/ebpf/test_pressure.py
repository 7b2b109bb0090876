"""Kernel wait sums -> runqueue_pressure and io_pressure events, on plain values."""

import pytest

from collectors.ebpf.pressure import io_pressure_events, io_totals_from_percpu, pressure_events, totals_from_percpu

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


# --- block I/O sums -> io_pressure ------------------------------------------------

LOOP3 = (7 << 20) | 3  # kernel-internal dev_t


def dev_name(major: int, minor: int) -> str:
    return f"loop{minor}" if major == 7 else "?"


def test_io_percpu_values_are_summed_over_cpus():
    got = io_totals_from_percpu([(1, LOOP3, [(1_000, 1, 1, 4096), (3_000, 2, 0, 8192)]),
                                 (2, LOOP3, [(0, 0, 0, 0), (0, 0, 0, 0)])])
    assert got == {(1, LOOP3): (4_000, 3, 1, 12288, 0)}


def test_requests_in_flight_add_the_waiting_done_so_far():
    now = 50 * 10**9
    got = io_totals_from_percpu([(1, LOOP3, [(1_000, 1, 1, 4096)])],
                                [(1, LOOP3, now - 20_000_000), (1, LOOP3, now - 5_000_000),
                                 (2, LOOP3, now - 1_000),
                                 (3, LOOP3, now - 31 * 10**9),  # a completion missed long ago
                                 (3, LOOP3, now + 10)],  # started after the clock was read
                                now)
    assert got == {(1, LOOP3): (1_000, 1, 1, 4096, 25_000_000), (2, LOOP3): (0, 0, 0, 0, 1_000)}


def test_io_window_event_names_the_device_and_counts_on_the_scope():
    prev = {(1, LOOP3): (10_000_000, 4, 4, 65536, 0)}
    cur = {(1, LOOP3): (55_000_000, 10, 9, 65536 * 3, 0), (5, LOOP3): (2_000_000, 1, 0, 4096, 0)}
    evs = io_pressure_events(prev, cur, S, E, {1: "/cpu-test/worker"}, dev_name)
    assert [(e.kind, e.subject) for e in evs] == [("io_pressure", "cgroup:/cpu-test/worker"), ("io_pressure", "node")]
    first = evs[0]
    assert first.magnitude == pytest.approx(0.045) and (first.start_ns, first.end_ns) == (S, E)
    assert first.attributes == {"device": "loop3", "requests": 6, "reads": 5, "bytes": 65536 * 2,
                                "aggregate": True}


def test_a_long_request_is_spread_over_the_windows_it_waited_in():
    # One 250 ms read submitted at 0, read at 100 and 200 ms (in flight) and 300 ms (done).
    reads = [{(1, LOOP3): (0, 0, 0, 0, 100_000_000)},
             {(1, LOOP3): (0, 0, 0, 0, 200_000_000)},
             {(1, LOOP3): (250_000_000, 1, 1, 65536, 0)}]
    windows = []
    prev = {}
    for i, cur in enumerate(reads):
        windows += io_pressure_events(prev, cur, S + i * 100_000_000, S + (i + 1) * 100_000_000, {}, dev_name)
        prev = cur
    assert [round(e.magnitude, 3) for e in windows] == [0.1, 0.1, 0.05]
    assert [e.attributes["requests"] for e in windows] == [0, 0, 1]


def test_io_no_waiting_no_event_and_recreated_entries_count_from_zero():
    same = {(1, LOOP3): (9, 1, 1, 1, 0)}
    assert io_pressure_events(same, same, S, E, {}, dev_name) == []
    (ev,) = io_pressure_events({(1, LOOP3): (9_000, 5, 5, 10, 0)}, {(1, LOOP3): (3_000, 1, 1, 4, 0)}, S, E, {},
                               dev_name)
    assert ev.magnitude == pytest.approx(3e-6) and ev.attributes["requests"] == 1
    assert io_pressure_events({}, {(1, LOOP3): (9, 1, 1, 1, 0)}, E, E, {}, dev_name) == []
    # An in-flight request that aged out drops the total: no negative window.
    assert io_pressure_events({(1, LOOP3): (9, 1, 1, 1, 500)}, {(1, LOOP3): (9, 1, 1, 1, 0)}, S, E, {},
                              dev_name) == []


# --- reclaim sums -> reclaim_pressure -----------------------------------------------

def test_reclaim_windows_are_the_stalling_since_the_last_read_per_scope_and_kind():
    from collectors.ebpf.pressure import reclaim_pressure_events, reclaim_totals

    prev = reclaim_totals([(1, 1, 2_000_000, 10)])
    cur = reclaim_totals([(1, 1, 9_000_000, 40), (1, 0, 500_000, 1), (3, 1, 0, 0)])
    evs = reclaim_pressure_events(prev, cur, S, E, {1: "/inference.slice/w.service"})
    assert [(e.subject, e.attributes["kind"], e.attributes["stalls"], round(e.magnitude, 6)) for e in evs] == [
        ("cgroup:/inference.slice/w.service", "direct", 1, 0.0005),
        ("cgroup:/inference.slice/w.service", "memcg", 30, 0.007)]
    assert all(e.kind == "reclaim_pressure" and e.attributes["aggregate"] is True for e in evs)
    assert evs[0].attributes["cgroup"] == "/inference.slice/w.service"


def test_a_long_reclaim_stall_is_spread_over_the_windows_it_spans():
    from collectors.ebpf.pressure import reclaim_pressure_events, reclaim_totals

    # One stall began at t=1.00 s (monotonic) and ends at 1.25 s; reads at 1.10, 1.20, 1.30.
    ms = 1_000_000
    r1 = reclaim_totals([], [(1, 1, 1000 * ms)], 1100 * ms)
    r2 = reclaim_totals([], [(1, 1, 1000 * ms)], 1200 * ms)
    r3 = reclaim_totals([(1, 1, 250 * ms, 1)], [], 1300 * ms)
    w2 = reclaim_pressure_events(r1, r2, S, E, {1: "/a"})
    w3 = reclaim_pressure_events(r2, r3, S, E, {1: "/a"})
    assert [round(e.magnitude, 6) for e in w2] == [0.1]
    assert [(round(e.magnitude, 6), e.attributes["stalls"]) for e in w3] == [(0.05, 1)]


def test_reclaim_counters_that_went_back_count_from_zero_and_stale_starts_are_dropped():
    from collectors.ebpf.pressure import INFLIGHT_MAX_AGE_NS, reclaim_pressure_events, reclaim_totals

    (ev,) = reclaim_pressure_events({(1, 1): (9_000, 20, 0)}, {(1, 1): (3_000, 2, 0)}, S, E, {1: "/a"})
    assert ev.magnitude == pytest.approx(3e-6) and ev.attributes["stalls"] == 2
    assert reclaim_totals([], [(1, 1, 0)], INFLIGHT_MAX_AGE_NS + 1) == {}
