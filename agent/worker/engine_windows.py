"""vLLM's scheduler gauges and counters, scrape by scrape, as windows in the event
store: what the engine was doing between two scrapes of one worker. The engine
causes of `infernode explain` read them (agent/tracing/engine_causes.py).

Pure: the parsed samples of a scrape (agent/worker/scrape.py) and its time in,
events out. A window runs from the previous scrape to this one; its gauges are
the values at its end (a gauge says nothing about between scrapes, which is why
`workers[].metrics_interval` can be shorter than the health interval). Counters
count what happened inside it; a counter that went down (vLLM restarted) counts
from zero. An idle window (nothing running or waiting, no preemption, no
rejection) is not written: a quiet worker costs the store nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.events import Event
from agent.samples import Sample

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
WAITING_BY_REASON = "vllm:num_requests_waiting_by_reason"
KV_USAGE = "vllm:kv_cache_usage_perc"
PREEMPTIONS = "vllm:num_preemptions_total"
REJECTIONS = "vllm:admission_rejections_total"


@dataclass
class _Scrape:
    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    by_reason: dict[str, float] = field(default_factory=dict)
    preemptions: float = 0.0
    rejections: dict[str, float] = field(default_factory=dict)


def _read(samples: Iterable[Sample]) -> _Scrape:
    """One scrape's values, summed over vLLM's engines (data-parallel ranks; the
    KV usage is the fullest engine's)."""
    out = _Scrape()
    for s in samples:
        v = s.value
        if not isinstance(v, float):
            continue
        if s.name == RUNNING:
            out.running += v
        elif s.name == WAITING:
            out.waiting += v
        elif s.name == KV_USAGE:
            out.kv_usage = max(out.kv_usage, v)
        elif s.name == WAITING_BY_REASON:
            reason = s.labels.get("reason", "?")
            out.by_reason[reason] = out.by_reason.get(reason, 0.0) + v
        elif s.name == PREEMPTIONS:
            out.preemptions += v
        elif s.name == REJECTIONS:
            reason = s.labels.get("reason", "?")
            out.rejections[reason] = out.rejections.get(reason, 0.0) + v
    return out


def _delta(now: float, before: float) -> float:
    return now - before if now >= before else now


class EngineWindows:
    """One worker's scrapes turned into windows."""

    def __init__(self, worker: str) -> None:
        self.subject = f"worker:{worker}"
        self._prev: tuple[int, _Scrape] | None = None

    def reset(self) -> None:
        """The worker went away (a failed scrape): the next scrape starts afresh."""
        self._prev = None

    def observe(self, samples: Iterable[Sample], t_ns: int) -> list[Event]:
        cur = _read(samples)
        prev, self._prev = self._prev, (t_ns, cur)
        if prev is None or t_ns <= prev[0]:
            return []
        start, before = prev
        out: list[Event] = []
        if cur.running or cur.waiting:
            attrs: dict[str, str | int | float | bool] = {
                "running": int(cur.running), "waiting": int(cur.waiting), "kv_cache_usage": round(cur.kv_usage, 4)}
            for reason, n in sorted(cur.by_reason.items()):
                attrs[f"waiting_{reason}"] = int(n)
            out.append(Event(start, t_ns, "engine_load", self.subject, cur.waiting, attrs))
        preempted = _delta(cur.preemptions, before.preemptions)
        if preempted > 0:
            out.append(Event(start, t_ns, "engine_preemption", self.subject, preempted, {}))
        for reason, n in sorted(cur.rejections.items()):
            turned_away = _delta(n, before.rejections.get(reason, 0.0))
            if turned_away > 0:
                out.append(Event(start, t_ns, "engine_rejection", self.subject, turned_away, {"reason": reason}))
        return out
