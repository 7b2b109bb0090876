"""Pressure windows: the kernel's cumulative per-scope sums turned into one event
per scope (and CPU or device) per drain window.

Three sums exist. Run-queue (bpf/sched.c `runq_pressure`): every run-queue wait of an
inference thread per (scope, CPU) -> `runqueue_pressure` events. Block I/O
(bpf/blockio.c `io_pressure`): every block request an inference thread submitted,
its wait from submission to completion, per (scope, device) -> `io_pressure` events.
Reclaim (bpf/reclaim.c `reclaim_pressure`): every reclaim stall of an inference
thread per (scope, kind) -> `reclaim_pressure` events.

The kernel maps are never cleared, so a window's share is the difference from the
previous read; a counter that went backwards (map entry recreated) counts from
zero. Pure: plain dicts in, Events out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from agent.events import NODE, Event
from collectors.ebpf.decode import RECLAIM_KINDS, dev_name_key

# (scope id, cpu) -> (wait ns, waits), cumulative since the program loaded.
Totals = Mapping[tuple[int, int], tuple[int, int]]
# (scope id, dev) -> (completed wait ns, requests, reads, bytes, in-flight wait ns).
IoTotals = Mapping[tuple[int, int], tuple[int, int, int, int, int]]
# (scope id, kind 0 direct | 1 memcg) -> (completed stall ns, stalls, in-progress stall ns).
ReclaimTotals = Mapping[tuple[int, int], tuple[int, int, int]]


def totals_from_percpu(items: list[tuple[int, list[tuple[int, int]]]]) -> dict[tuple[int, int], tuple[int, int]]:
    """[(scope id, [(ns, waits) per cpu])] -> {(scope id, cpu): (ns, waits)}, zeros left out."""
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for sid, per_cpu in items:
        for cpu, (ns, waits) in enumerate(per_cpu):
            if waits:
                out[(sid, cpu)] = (ns, waits)
    return out


def _subject(sid: int, scopes: Mapping[int, str]) -> str:
    return f"cgroup:{scopes[sid]}" if sid in scopes else NODE


def pressure_events(
    previous: Totals, current: Totals, start_ns: int, end_ns: int, scopes: Mapping[int, str]
) -> list[Event]:
    """One event per (scope, CPU) whose waits grew over [start_ns, end_ns]:
    magnitude is the seconds waited, attributes the wait count and CPU."""
    out: list[Event] = []
    if end_ns <= start_ns:
        return out
    for (sid, cpu), (ns, waits) in sorted(current.items()):
        prev_ns, prev_waits = previous.get((sid, cpu), (0, 0))
        if ns < prev_ns or waits < prev_waits:
            prev_ns, prev_waits = 0, 0
        d_ns, d_waits = ns - prev_ns, waits - prev_waits
        if d_ns <= 0 or d_waits <= 0:
            continue
        out.append(Event(start_ns, end_ns, "runqueue_pressure", _subject(sid, scopes), d_ns / 1e9,
                         {"cpu": cpu, "waits": d_waits, "aggregate": True}))
    return out


# A request in flight longer than this is one whose completion was missed (or a
# hung device, which the io_stall outliers report): its wait is no longer accrued.
INFLIGHT_MAX_AGE_NS = 30 * 10**9


def io_totals_from_percpu(
    items: list[tuple[int, int, list[tuple[int, int, int, int]]]],
    inflight: Iterable[tuple[int, int, int]] = (),
    now_mono_ns: int = 0,
) -> dict[tuple[int, int], tuple[int, int, int, int, int]]:
    """Completed requests [(scope id, dev, [(ns, requests, reads, bytes) per cpu])] and
    requests in flight [(scope id, dev, start ns on the kernel's monotonic clock)] read
    at `now_mono_ns` -> {(scope id, dev): (ns, requests, reads, bytes, in-flight ns)}.

    The in-flight part makes the total the waiting done up to now, so the difference
    of two reads is the waiting done between them, not the waits that happened to
    complete then (a 120 ms read completing in a 100 ms window is not 120 ms of it)."""
    out: dict[tuple[int, int], tuple[int, int, int, int, int]] = {}
    for sid, dev, per_cpu in items:
        requests = sum(v[1] for v in per_cpu)
        if requests:
            out[(sid, dev)] = (sum(v[0] for v in per_cpu), requests, sum(v[2] for v in per_cpu),
                               sum(v[3] for v in per_cpu), 0)
    for sid, dev, start in inflight:
        age = now_mono_ns - start
        if 0 < age < INFLIGHT_MAX_AGE_NS:
            ns, requests, reads, nbytes, flying = out.get((sid, dev), (0, 0, 0, 0, 0))
            out[(sid, dev)] = (ns, requests, reads, nbytes, flying + age)
    return out


def io_pressure_events(
    previous: IoTotals, current: IoTotals, start_ns: int, end_ns: int, scopes: Mapping[int, str],
    device_name: Callable[[int, int], str],
) -> list[Event]:
    """One event per (scope, device) whose threads waited on block I/O over
    [start_ns, end_ns]: magnitude is the seconds waited inside the window (summed:
    overlapping requests of several threads count each), attributes the device and
    the requests that completed in it."""
    out: list[Event] = []
    if end_ns <= start_ns:
        return out
    for (sid, dev), cur in sorted(current.items()):
        prev = previous.get((sid, dev), (0, 0, 0, 0, 0))
        if any(c < p for c, p in zip(cur[:4], prev[:4], strict=False)):  # the completed counters restarted
            prev = (0, 0, 0, 0, 0)
        d_req, d_reads, d_bytes = (c - p for c, p in zip(cur[1:4], prev[1:4], strict=False))
        # In-flight waits can only drop by completing (then they are in the completed
        # sum, whole) or by ageing out; a drop never makes a negative window.
        d_ns = (cur[0] + cur[4]) - (prev[0] + prev[4])
        if d_ns <= 0:
            continue
        out.append(Event(start_ns, end_ns, "io_pressure", _subject(sid, scopes), d_ns / 1e9,
                         {"device": device_name(*dev_name_key(dev)), "requests": d_req, "reads": d_reads, "bytes": d_bytes,
                          "aggregate": True}))
    return out


def reclaim_totals(
    completed: Iterable[tuple[int, int, int, int]],
    inflight: Iterable[tuple[int, int, int]] = (),
    now_mono_ns: int = 0,
) -> dict[tuple[int, int], tuple[int, int, int]]:
    """Completed stalls [(scope id, kind, ns, stalls)] and stalls in progress
    [(scope id, kind, start ns on the kernel's monotonic clock)] read at
    `now_mono_ns` -> {(scope id, kind): (ns, stalls, in-progress ns)}. As for block
    I/O, the in-progress part makes two reads' difference the stalling done between
    them: a 300 ms stall is spread over the windows it spans, not put in its last."""
    out: dict[tuple[int, int], tuple[int, int, int]] = {}
    for sid, kind, ns, stalls in completed:
        if stalls:
            out[(sid, kind & 1)] = (ns, stalls, 0)
    for sid, kind, start in inflight:
        age = now_mono_ns - start
        if 0 < age < INFLIGHT_MAX_AGE_NS:
            ns, stalls, flying = out.get((sid, kind & 1), (0, 0, 0))
            out[(sid, kind & 1)] = (ns, stalls, flying + age)
    return out


def reclaim_pressure_events(
    previous: ReclaimTotals, current: ReclaimTotals, start_ns: int, end_ns: int, scopes: Mapping[int, str]
) -> list[Event]:
    """One event per (scope, kind) whose threads stalled in reclaim over
    [start_ns, end_ns]: magnitude is the seconds stalled inside the window (summed
    over threads), attributes the kind, the stalls that ended in it and the cgroup."""
    out: list[Event] = []
    if end_ns <= start_ns:
        return out
    for (sid, kind), cur in sorted(current.items()):
        prev = previous.get((sid, kind), (0, 0, 0))
        if cur[0] < prev[0] or cur[1] < prev[1]:  # the completed counters restarted
            prev = (0, 0, 0)
        d_ns = (cur[0] + cur[2]) - (prev[0] + prev[2])
        if d_ns <= 0:
            continue
        out.append(Event(start_ns, end_ns, "reclaim_pressure", _subject(sid, scopes), d_ns / 1e9,
                         {"kind": RECLAIM_KINDS[kind & 1], "stalls": cur[1] - prev[1], "cgroup": scopes.get(sid, ""),
                          "aggregate": True}))
    return out
