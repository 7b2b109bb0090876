import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.events import Event, EventStore, approx_size

T0 = 1_795_000_000_000_000_000  # realtime ns


def ev(i: int, kind: str = "runqueue_wait", subject: str = "cgroup:/inference.slice/w.service",
       dur: int = 1000, **attrs) -> Event:
    return Event(T0 + i * 1000, T0 + i * 1000 + dur, kind, subject, 0.001, attrs)


def test_query_by_window_subject_and_kind():
    s = EventStore()
    s.add(ev(0))
    s.add(ev(10, kind="gpu_throttle", subject="gpu:GPU-1"))
    s.add(ev(20, subject="node", kind="oom_kill"))
    s.add(ev(30, dur=50_000))  # long: overlaps windows that start after it began
    got = s.query(T0 + 40_000, T0 + 45_000)
    assert [e.start_ns for e in got] == [T0 + 30_000]
    assert [e.kind for e in s.query(T0, T0 + 100_000, subjects=["gpu:GPU-1", "node"])] == ["gpu_throttle", "oom_kill"]
    assert [e.start_ns for e in s.query(T0, T0 + 100_000, kinds=["runqueue_wait"])] == [T0, T0 + 30_000]
    assert s.query(T0, T0 + 100_000, subjects=["worker:none"]) == []
    # Inclusive bounds: an event ending exactly at the window start overlaps it.
    assert [e.start_ns for e in s.query(T0 + 1000, T0 + 1000, subjects=["cgroup:/inference.slice/w.service"])] == [T0]


def test_results_are_sorted_by_start_across_chunks():
    s = EventStore()
    s.CHUNK_EVENTS = 4
    for i in (9, 3, 7, 1, 8, 2, 6, 0, 5, 4):
        s.add(ev(i))
    assert [e.start_ns - T0 for e in s.query(T0, T0 + 100_000)] == [i * 1000 for i in range(10)]


def test_an_event_ending_before_it_starts_is_stored_as_an_instant():
    s = EventStore()
    s.add(Event(T0 + 5, T0, "gpu_xid", "gpu:GPU-1"))
    assert s.recent(1)[0].end_ns == T0 + 5


def test_bound_evicts_oldest_first_and_counts_them():
    size = approx_size(ev(0))
    s = EventStore(max_bytes=size * 1000)
    s.CHUNK_EVENTS = 100
    for i in range(5000):
        s.add(ev(i))
        assert s.size_bytes <= s.max_bytes
    assert len(s) + s.evicted_total == 5000
    assert s.evicted_total % 100 == 0  # whole chunks go
    assert 900 < len(s) <= 1000
    kept = s.query(T0, T0 + 10**12)
    assert [e.start_ns for e in kept] == [T0 + i * 1000 for i in range(5000 - len(s), 5000)]  # the newest
    assert [e.start_ns for e in s.recent(3)] == [T0 + 4999_000, T0 + 4998_000, T0 + 4997_000]
    assert s.added_total == {"runqueue_wait": 5000}


def test_max_bytes_must_be_positive():
    with pytest.raises(ValueError):
        EventStore(0)


# A store sized by approx_size must hold about that much memory: the estimate is
# within this factor of what tracemalloc measures, both ways.
SIZE_FACTOR = 1.25


_MEASURE = """
import gc, json, sys, tracemalloc
from agent.events import Event, EventStore
n, nattrs, t0 = 5000, int(sys.argv[1]), int(sys.argv[2])
keys = ("tid", "cpu", "holder_pid", "holder_comm", "reason", "bytes")[:nattrs]
gc.collect()
tracemalloc.start()
before, _ = tracemalloc.get_traced_memory()
s = EventStore(1 << 30)
for i in range(n):
    attrs = {k: (f"comm-{i}" if k in ("holder_comm", "reason") else 100_000 + i) for k in keys}
    s.add(Event(t0 + i, t0 + i + 10, "runqueue_wait", f"cgroup:/inference.slice/w{i % 9}.service", float(i), attrs))
gc.collect()
after, _ = tracemalloc.get_traced_memory()
print(json.dumps({"actual": after - before, "estimate": s.size_bytes}))
"""


@pytest.mark.parametrize("nattrs", [0, 1, 3, 6])
def test_approx_size_is_honest_against_tracemalloc(nattrs):
    """Events are built inside the traced span and held only by the store, so the
    traced growth is what the store really costs: events, their attribute dicts,
    strings and numbers, chunk lists and the per-subject index. Measured in a fresh
    interpreter: tracemalloc counts every thread's allocations, and threads left by
    other tests in this process would be counted too."""
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(nattrs), str(T0)], capture_output=True, text=True,
                       check=True, cwd=str(Path(__file__).resolve().parents[3]))
    m = json.loads(r.stdout)
    actual, estimate = m["actual"], m["estimate"]
    assert estimate / SIZE_FACTOR <= actual <= estimate * SIZE_FACTOR, (actual, estimate)
