"""Run-queue pressure: the kernel's cumulative per-(scope, CPU) wait sums turned
into one `runqueue_pressure` event per scope and CPU per drain window.

The kernel map (bpf/sched.c `runq_pressure`) is never cleared, so a window's
share is the difference from the previous read; a counter that went backwards
(map entry recreated) counts from zero. Pure: plain dicts in, Events out.
"""

from __future__ import annotations

from typing import Mapping

from agent.events import NODE, Event

# (scope id, cpu) -> (wait ns, waits), cumulative since the program loaded.
Totals = Mapping[tuple[int, int], tuple[int, int]]


def totals_from_percpu(items: list[tuple[int, list[tuple[int, int]]]]) -> dict[tuple[int, int], tuple[int, int]]:
    """[(scope id, [(ns, waits) per cpu])] -> {(scope id, cpu): (ns, waits)}, zeros left out."""
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for sid, per_cpu in items:
        for cpu, (ns, waits) in enumerate(per_cpu):
            if waits:
                out[(sid, cpu)] = (ns, waits)
    return out


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
        subject = f"cgroup:{scopes[sid]}" if sid in scopes else NODE
        out.append(Event(start_ns, end_ns, "runqueue_pressure", subject, d_ns / 1e9,
                         {"cpu": cpu, "waits": d_waits, "aggregate": True}))
    return out
