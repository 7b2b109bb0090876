"""The EventStore's chunk bisection finds exactly what a full scan finds, with late
(out-of-order) events and evictions, for the windows the correlation asks about."""

import random

from agent.events import Event, EventStore

T0 = 1_795_000_000_000_000_000


def brute(events, start, end, subjects=None, prefixes=()):
    return sorted(
        (e for e in events if e.start_ns <= end and e.end_ns >= start
         and (subjects is None or e.subject in subjects or e.subject.startswith(tuple(prefixes)) and prefixes)),
        key=lambda e: (e.start_ns, e.end_ns))


def test_bisection_matches_full_scan_with_late_events():
    rng = random.Random(11)
    store = EventStore(max_bytes=10**9)
    store.CHUNK_EVENTS = 16
    kept = []
    for i in range(3000):
        # mostly in time order; one in ten arrives up to 2 s late; a few are long
        start = T0 + i * 1_000_000 - (rng.randrange(2_000_000_000) if rng.random() < 0.1 else 0)
        dur = rng.randrange(5_000_000_000) if rng.random() < 0.01 else rng.randrange(3_000_000)
        ev = Event(start, start + dur, "runqueue_wait", rng.choice(["cgroup:/a", "cgroup:/b", "dev:sda", "node"]))
        store.add(ev)
        kept.append(ev)
    for _ in range(300):
        a = T0 + rng.randrange(-10**9, 4 * 10**9)
        b = a + rng.randrange(2 * 10**9)
        assert store.query(a, b) == brute(kept, a, b)
        assert store.query(a, b, ["cgroup:/a", "node"]) == brute(kept, a, b, {"cgroup:/a", "node"})
        assert store.query(a, b, ["cgroup:/a"], subject_prefixes=["dev:"]) == brute(kept, a, b, {"cgroup:/a"}, ["dev:"])


def test_bisection_after_eviction():
    store = EventStore(max_bytes=200 * 400)
    store.CHUNK_EVENTS = 10
    events = [Event(T0 + i * 1000, T0 + i * 1000 + 500, "runqueue_wait", "cgroup:/a") for i in range(2000)]
    for ev in events:
        store.add(ev)
    assert store.evicted_total > 0
    survivors = events[store.evicted_total:]
    assert store.query(T0, T0 + 10**9) == survivors
    mid = survivors[len(survivors) // 2]
    assert store.query(mid.start_ns, mid.end_ns) == [mid]
