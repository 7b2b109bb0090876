"""The engine's own causes of a slow request: it queued behind a full batch or a
full KV cache, other requests' prefills and a large batch slowed its decode, it
was preempted and recomputed, or its own prompt is long. Pure: the request, its
ranking (the infrastructure causes, already timed), its worker's load timeline
(agent/tracing/engine_load.py) and the engine windows scraped from vLLM
(agent/worker/engine_windows.py) in, causes out.

Infrastructure causes keep their measured time; the engine causes explain what
is left of each phase, so shares never add up to more than the request. Which
cause is measured and which is a model's estimate is the kind's own
(agent/event_kinds.py `estimated`) and is said in the words.

- queueing (measured): the request's queue time, with how many requests were
  running for most of it and queued ahead of it (from the timeline) and the worker's
  batch limit (its --max-num-seqs) when known. Named only when others were on the
  engine: a lone request's queue time is a step boundary, not load.
- kv_cache_pressure (measured): the part of the queue time during which vLLM's
  KV-cache usage gauge stood at `kv_full` or above, unless the batch was at its
  limit then (the limit held it, not the cache).
- preemption (estimated): vLLM advances every running request one token per
  step, so a request whose decode took much longer than its batch-mates' pace
  (their median TPOT times its tokens) sat out of the batch: preempted and
  recomputed. vLLM's spans carry no preemption count (the reference, section 3),
  so the gap is the evidence; when vLLM's counter is scraped, a gap with no
  preemption counted meanwhile is not named.
- batch_interference (estimated): decode time above the worker's unloaded TPOT
  times the request's tokens (what is left after preemption and the
  infrastructure), named with the prompts other requests prefilled meanwhile and
  the batch size; only when others were in the batch.
- long_prompt (estimated): a prompt `long_prompt_ratio` times the worker's typical
  one; the prefill time above what a typical prompt takes is its own size, so no
  other request is blamed for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.events import Event
from agent.tracing.engine_load import LoadView, Run, overlap
from agent.tracing.ranking import Phase, Ranked, Ranking
from agent.tracing.spans import RequestSpan
from agent.units import short_duration

# A decode this much slower than its batch-mates' pace is a gap (preemption); with
# vLLM's preemption counter up meanwhile, the smaller one is.
PREEMPTION_GAP = 0.25
PREEMPTION_GAP_COUNTED = 0.1
# Others in the batch, on average, before batch size alone counts as interference.
BUSY_BATCH = 0.5


@dataclass(frozen=True)
class EngineSettings:
    min_cause_s: float = 0.001
    kv_full: float = 0.9
    long_prompt_ratio: float = 4.0
    min_share: float = 0.0


def engine_causes(r: RequestSpan, ranking: Ranking, view: LoadView | None, windows: Sequence[Event],
                  batch_limit: int | None, settings: EngineSettings) -> list[Ranked]:
    """The engine causes of one request, timed within what the infrastructure
    causes left of each phase."""
    if view is None:
        return []
    _, queue, prefill, decode, _ = ranking.phases
    left = _left_per_phase(ranking, queue, prefill, decode)
    # A cause cannot explain more than its phase: one whose phase is under the minimum
    # share would only be evidence, and is not worked out (most requests' queue time).
    floor = max(settings.min_cause_s, settings.min_share * r.e2e)
    out: list[Ranked] = []
    if left["queue"] >= floor:
        out.extend(_queue_causes(queue, view.neighbours, windows, batch_limit, left, settings))
    if left["decode"] >= floor:
        out.extend(_decode_causes(r, decode, view, windows, left, settings))
    if left["prefill"] >= floor:
        lp = _long_prompt(r, prefill, view, left, settings)
        if lp is not None:
            out.append(lp)
    return [c for c in out if c.explained_s >= settings.min_cause_s]


def _left_per_phase(ranking: Ranking, *phs: Phase) -> dict[str, float]:
    """Seconds of each of `phs` the infrastructure causes did not explain."""
    taken: dict[str, float] = {}
    for c in ranking.timed:
        for name, s in c.per_phase.items():
            taken[name] = taken.get(name, 0.0) + s
    return {p.name: max(0.0, (p.end_ns - p.start_ns) / 1e9 - taken.get(p.name, 0.0)) for p in phs}


def _count_at(neighbours: Sequence[Run], t: int) -> tuple[int, int]:
    """(running, queued) among the neighbours at time t."""
    running = queued = 0
    for x in neighbours:
        if x.scheduled <= t < x.last:
            running += 1
        elif x.queued <= t < x.scheduled:
            queued += 1
    return running, queued


def _queue_causes(q: Phase, neighbours: Sequence[Run], windows: Sequence[Event], batch_limit: int | None,
                  left: Mapping[str, float], settings: EngineSettings) -> list[Ranked]:
    if q.end_ns <= q.start_ns or left.get("queue", 0.0) < settings.min_cause_s:
        return []
    # The engine's state over the queue time, piecewise between the neighbours' transitions.
    cuts = sorted({q.start_ns, q.end_ns, *(t for x in neighbours for t in (x.queued, x.scheduled, x.last)
                                            if q.start_ns < t < q.end_ns)})
    kv = [ev for ev in windows if ev.kind == "engine_load"
          and float(ev.attributes.get("kv_cache_usage", 0.0) or 0.0) >= settings.kv_full]
    limit_ns = kv_ns = total_ns = 0
    # How long each running count held. The count named is the one that held longest:
    # a span's times are rebuilt from vLLM's frontend TTFT and EngineCore's phase
    # times, whose clocks differ by the output path's delay, so one request's last
    # token and the next one's scheduling can overlap by a few ms that never happened.
    held: dict[int, int] = {}
    for a, b in zip(cuts, cuts[1:], strict=False):
        running, _ = _count_at(neighbours, a)
        span = b - a
        held[running] = held.get(running, 0) + span
        total_ns += span
        at_limit = batch_limit is not None and running >= batch_limit
        if at_limit:
            limit_ns += span
        else:
            kv_ns += sum(overlap(ev.start_ns, ev.end_ns, a, b) for ev in kv)
    kv_ns = min(kv_ns, total_ns - limit_ns)
    ahead = sum(1 for x in neighbours if x.queued < q.start_ns < x.scheduled)
    running_max = max(held, default=0)
    running_most = max(held, key=lambda n: (held[n], n), default=0)
    if running_max == 0 and ahead == 0 and kv_ns == 0:
        return []  # alone on the engine: waiting for a step boundary is not load
    scale = left["queue"] / q.duration_s  # what the infrastructure left of the queue time
    out = []
    kv_s = kv_ns / 1e9 * scale
    queue_s = (total_ns - kv_ns) / 1e9 * scale
    if queue_s > 0:
        detail: dict[str, object] = {"running": running_most, "running_max": running_max, "ahead": ahead,
                                     "batch_limit": batch_limit,
                                     "at_batch_limit_seconds": round(limit_ns / 1e9, 6), "measured": True}
        limit = f" (batch limit {batch_limit})" if batch_limit is not None else " (batch limit unknown)"
        where = f" behind {running_most} running requests{limit}"
        if ahead:
            where += f", {ahead} queued ahead of it"
        out.append(Ranked("queueing", "queue", [], queue_s, {"queue": queue_s}, detail, where + " (measured)"))
    if kv_s > 0:
        peak = max(float(ev.attributes.get("kv_cache_usage", 0.0) or 0.0) for ev in kv)
        capacity = max((int(ev.attributes.get("waiting_capacity", 0) or 0) for ev in kv), default=0)
        where = f": vLLM's KV cache stood at {peak:.0%} while it queued"
        if capacity:
            where += f", {capacity} requests waiting for capacity"
        out.append(Ranked("kv_cache_pressure", "kv", kv, kv_s, {"queue": kv_s},
                          {"kv_cache_usage": round(peak, 4), "waiting_capacity": capacity, "measured": True},
                          where + " (measured)"))
    return out


def _decode_causes(r: RequestSpan, d: Phase, view: LoadView, windows: Sequence[Event],
                   left: Mapping[str, float], settings: EngineSettings) -> list[Ranked]:
    n = r.completion_tokens
    if n < 2 or d.end_ns <= d.start_ns:
        return []
    decode_s = d.duration_s
    avail = left.get("decode", 0.0)
    dur = d.end_ns - d.start_ns
    out: list[Ranked] = []
    base = view.baseline
    floor = max(settings.min_cause_s, settings.min_share * r.e2e)
    # Cheap first: a decode no slower than the worker's fast recent pace fell behind
    # no batch, and one within the floor of its unloaded time met no interference.
    fast = base.fast_tpot_s
    behind = fast is None or decode_s > fast * (n - 1) * (1 + PREEMPTION_GAP_COUNTED)
    interfered = base.tpot_s is not None and decode_s - base.tpot_s * (n - 1) >= floor
    if not behind and not interfered:
        return []
    # Batch-mates: decoding beside it for at least half of its decode, so that their
    # pace is the engine's over the same steps. The pace is their fastest tenth's:
    # a mate in the batch throughout is as fast as any; preempted ones are slower.
    d0, d1, half = d.start_ns, d.end_ns, dur / 2
    tpots = sorted(x.tpot for x in view.neighbours
                   if x.tpot is not None and min(x.last, d1) - max(x.first, d0) >= half) if behind else []
    preempt_s = 0.0
    if tpots:
        expected = tpots[len(tpots) // 10] * (n - 1)
        gap = decode_s - expected
        counted = [ev for ev in windows if ev.kind == "engine_preemption"
                   and overlap(ev.start_ns, ev.end_ns, d.start_ns, d.end_ns) > 0]
        scraped = any(ev.kind == "engine_load" for ev in windows) or bool(counted)
        # vLLM's counter, when scraped, is the evidence a smaller gap needs; without
        # it, only a larger gap is one.
        threshold = PREEMPTION_GAP_COUNTED if counted else PREEMPTION_GAP
        if gap > threshold * expected and (counted or not scraped):
            preempt_s = min(gap, avail)
            count = int(sum(ev.magnitude for ev in counted))
            where = (f": decode {short_duration(decode_s)} against {short_duration(expected)} at its batch-mates' pace "
                     f"({len(tpots)} requests)")
            where += (f", vLLM counted {count} preemptions on this worker meanwhile" if counted
                      else ", vLLM's preemption counter not scraped")
            out.append(Ranked("preemption", "preemption", counted, preempt_s, {"decode": preempt_s},
                              {"decode_seconds": round(decode_s, 6), "pace_seconds": round(expected, 6),
                               "batch_mates": len(tpots), "preemptions_counted": count if counted else None,
                               "measured": False}, where + " (estimated)"))
    tpot0 = base.tpot_s
    if tpot0 is None or not interfered:
        return out
    others = view.neighbours
    batch = sum(overlap(x.scheduled, x.last, d.start_ns, d.end_ns) for x in others) / dur
    prefills = [x for x in others if overlap(x.scheduled, x.first, d.start_ns, d.end_ns) > 0]
    if not prefills and batch < BUSY_BATCH:
        return out
    unloaded = tpot0 * (n - 1)
    excess = min(decode_s - unloaded - preempt_s, avail - preempt_s)
    if excess <= 0:
        return out
    tokens = sum(x.prompt_tokens for x in prefills)
    where = f": decode {short_duration(decode_s)} against {short_duration(unloaded)} unloaded"
    if prefills:
        where += f", {len(prefills)} prompts ({_tokens(tokens)} tokens) prefilled during it"
    where += f", {1 + batch:.1f} requests in the batch on average"
    out.append(Ranked("batch_interference", "batch", [], excess, {"decode": excess},
                      {"decode_seconds": round(decode_s, 6), "unloaded_seconds": round(unloaded, 6),
                       "unloaded_tpot_seconds": round(tpot0, 6), "baseline_samples": view.baseline.tpot_samples,
                       "prefills": len(prefills), "prefill_tokens": tokens, "mean_batch": round(1 + batch, 2),
                       "measured": False}, where + " (estimated)"))
    return out


def _long_prompt(r: RequestSpan, p: Phase, view: LoadView, left: Mapping[str, float],
                 settings: EngineSettings) -> Ranked | None:
    typical = view.baseline.typical_prompt
    if not typical or r.prompt_tokens < settings.long_prompt_ratio * typical or p.end_ns <= p.start_ns:
        return None
    own = min(p.duration_s * (1 - typical / r.prompt_tokens), left.get("prefill", 0.0))
    if own <= 0:
        return None
    where = (f": its own {_tokens(r.prompt_tokens)}-token prompt against {_tokens(typical)} typical "
             f"on this worker, prefill {short_duration(p.duration_s)} (estimated)")
    return Ranked("long_prompt", "prompt", [], own, {"prefill": own},
                  {"prompt_tokens": r.prompt_tokens, "typical_prompt_tokens": typical,
                   "prefill_seconds": round(p.duration_s, 6), "measured": False}, where)


def _tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 10_000 else f"{n:,}"
