"""The engine's own causes (agent/tracing/engine_causes.py) on requests whose
timelines are built by hand, so each test knows the truth: what queued behind
what, which decode overlapped which prefill, what the worker does unloaded."""

from __future__ import annotations

import pytest

from agent.events import Event
from agent.tracing.correlate import explain
from agent.tracing.engine_causes import EngineSettings
from agent.tracing.engine_load import LoadTimeline, Run
from agent.tracing.ranking import RequestScope
from agent.tracing.recent import RecentRequests
from agent.tracing.spans import RequestSpan

T0 = 1_700_000_000 * 10**9
S = 10**9
ENGINE_KINDS = {"queueing", "kv_cache_pressure", "preemption", "batch_interference", "long_prompt"}

_ids = iter(range(1, 1 << 30))


def req(arrival: float, queue: float, prefill: float, decode: float, tokens: int = 101,
        prompt: int = 100) -> RequestSpan:
    """A request arriving `arrival` s after T0; no frontend or finishing time."""
    i = next(_ids)
    ttft = queue + prefill
    return RequestSpan(trace_id=f"{i:032x}", span_id=f"{i:016x}", start_ns=T0 + int(arrival * S),
                       end_ns=T0 + int((arrival + ttft + decode) * S), ttft=ttft, e2e=ttft + decode, queue=queue,
                       prefill=prefill, decode=decode, prompt_tokens=prompt, completion_tokens=tokens, pid=1,
                       service_name="w", model_name="m")


def timeline(*requests: RequestSpan, settle: float = 5.0) -> LoadTimeline:
    t = LoadTimeline(horizon_s=3600, settle_s=settle, min_samples=20)
    for r in requests:
        t.add("w", r)
    return t


def why(r: RequestSpan, t: LoadTimeline, events: list[Event] = (), batch_limit: int | None = None,
        min_share: float = 0.05):
    scope = RequestScope("w", batch_limit=batch_limit)
    return explain(r, scope, list(events), None, 0.001, min_share, lambda: t.view("w", Run.of(r)),
                   EngineSettings(min_cause_s=0.001))


def kinds(ex) -> list[str]:
    return [c.kind for c in ex.causes]


def alone(n: int, start: float = 0.0, tpot: float = 0.01) -> list[RequestSpan]:
    """n requests one after another, each decoding alone at `tpot`."""
    return [req(start + i * 1.2, 0.001, 0.05, tpot * 100) for i in range(n)]


def test_a_request_queued_behind_a_full_batch_names_queueing_with_its_measured_queue_time():
    running = [req(0.0, 0.001, 0.05, 3.0) for _ in range(4)]
    r = req(0.5, 1.5, 0.05, 0.5)
    ex = why(r, timeline(*running, r), batch_limit=4)
    (c,) = ex.causes
    assert c.kind == "queueing"
    assert c.explained_s == pytest.approx(1.5, rel=1e-3)
    assert c.detail["running"] == 4 and c.detail["batch_limit"] == 4
    assert c.detail["at_batch_limit_seconds"] == pytest.approx(1.5, rel=1e-3)
    assert "behind 4 running requests (batch limit 4)" in c.text and c.text.endswith("(measured)")


def test_the_running_count_named_is_the_one_that_held_not_a_clock_skew_sliver():
    # Four run; as the first finishes, a fifth is scheduled 3 ms "before" it ends: the
    # rebuilt times of two requests (frontend TTFT against EngineCore's phases) overlap
    # by a few ms that a batch of 4 never had. The request queued behind 4, not 5.
    running = [req(0.0, 0.001, 0.05, 1.0)] + [req(0.0, 0.001, 0.05, 3.0) for _ in range(3)]
    fifth = req(0.0, 1.048, 0.05, 1.5)
    r = req(0.5, 1.5, 0.05, 0.5)
    c = next(c for c in why(r, timeline(*running, fifth, r), batch_limit=4).causes if c.kind == "queueing")
    assert c.detail["running_max"] == 5 and c.detail["running"] == 4
    assert "behind 4 running requests (batch limit 4)" in c.text, c.text


def test_a_request_alone_on_the_engine_names_nothing_for_its_step_boundary_wait():
    r = req(0.0, 0.02, 0.05, 0.5)
    ex = why(r, timeline(r))
    assert kinds(ex) == [] and ex.verdict == "no known cause"


def test_queue_time_on_a_full_kv_cache_is_kv_cache_pressure_and_the_rest_queueing():
    running = [req(0.0, 0.001, 0.05, 3.0) for _ in range(2)]
    r = req(0.0, 2.0, 0.05, 0.5)
    kv = Event(T0 + int(1.0 * S), T0 + int(2.0 * S), "engine_load", "worker:w", 3.0,
               {"running": 2, "waiting": 3, "kv_cache_usage": 0.97})
    ex = why(r, timeline(*running, r), [kv], batch_limit=8)
    by = {c.kind: c for c in ex.causes}
    assert set(by) == {"queueing", "kv_cache_pressure"}
    assert by["kv_cache_pressure"].explained_s == pytest.approx(1.0, rel=0.01)
    assert by["queueing"].explained_s == pytest.approx(1.0, rel=0.01)
    assert "97%" in by["kv_cache_pressure"].text
    # A cache below the threshold explains none of it.
    low = Event(kv.start_ns, kv.end_ns, "engine_load", "worker:w", 3.0, {"kv_cache_usage": 0.5})
    assert kinds(why(r, timeline(*running, r), [low], batch_limit=8)) == ["queueing"]


def test_at_its_batch_limit_a_full_kv_cache_is_not_blamed():
    running = [req(0.0, 0.001, 0.05, 3.0) for _ in range(4)]
    r = req(0.0, 2.0, 0.05, 0.5)
    kv = Event(T0, T0 + 2 * S, "engine_load", "worker:w", 3.0, {"kv_cache_usage": 0.99})
    assert kinds(why(r, timeline(*running, r), [kv], batch_limit=4)) == ["queueing"]


def test_other_prompts_prefilled_during_a_decode_are_batch_interference_against_the_unloaded_pace():
    quiet = alone(30)
    t0 = 40.0
    r = req(t0, 0.001, 0.05, 2.0)  # 100 decode steps at 10 ms would take 1.0 s
    long_ones = [req(t0 + 0.2 + 0.4 * i, 0.001, 0.3, 0.2, tokens=5, prompt=8000) for i in range(4)]
    late = req(t0 + 30, 0.001, 0.05, 1.0)  # settles everything before it
    t = timeline(*quiet, r, *long_ones, late)
    ex = why(r, t)
    (c,) = [c for c in ex.causes if c.kind == "batch_interference"]
    assert c.explained_s == pytest.approx(1.0, rel=0.05)
    assert c.detail["prefills"] == 4 and c.detail["prefill_tokens"] == 32000
    assert c.detail["unloaded_tpot_seconds"] == pytest.approx(0.01, rel=1e-3)
    assert "4 prompts (32.0k tokens) prefilled during it" in c.text and c.text.endswith("(estimated)")
    # The quiet ones name nothing: they decoded at the unloaded pace.
    for q in quiet[-5:]:
        assert not ENGINE_KINDS & set(kinds(why(q, t)))


def test_without_a_learned_baseline_batch_interference_is_not_named():
    r = req(0.0, 0.001, 0.05, 2.0)
    others = [req(0.2, 0.001, 0.3, 0.2, tokens=5, prompt=8000)]
    assert "batch_interference" not in kinds(why(r, timeline(r, *others)))


def test_a_decode_far_behind_its_batch_mates_pace_is_a_preemption():
    mates = [req(0.0, 0.001, 0.05, 1.0) for _ in range(5)]  # 10 ms per token
    r = req(0.0, 0.001, 0.05, 1.8)  # the same 101 tokens in 1.8 s
    t = timeline(*mates, r)
    counted = Event(T0 + S // 2, T0 + S, "engine_preemption", "worker:w", 2.0, {})
    ex = why(r, t, [counted])
    (c,) = [c for c in ex.causes if c.kind == "preemption"]
    assert c.explained_s == pytest.approx(0.8, rel=0.02)
    assert "vLLM counted 2 preemptions" in c.text and c.text.endswith("(estimated)")
    # Its batch-mates were not preempted.
    for m in mates:
        assert "preemption" not in kinds(why(m, t, [counted]))
    # Scraped, and no preemption counted meanwhile: the gap is something else, not named.
    load = Event(T0, T0 + S, "engine_load", "worker:w", 0.0, {"running": 6, "kv_cache_usage": 0.3})
    assert "preemption" not in kinds(why(r, t, [load]))
    # Not scraped: the gap alone is the evidence, if it is large enough.
    (c,) = [c for c in why(r, t).causes if c.kind == "preemption"]
    assert "counter not scraped" in c.text
    slight = req(0.0, 0.001, 0.05, 1.2)  # 20 % behind: a preemption only with the counter's word
    t2 = timeline(*mates, slight)
    assert "preemption" not in kinds(why(slight, t2))
    assert "preemption" in kinds(why(slight, t2, [counted]))


def test_a_long_prompt_is_its_own_size_and_no_other_request_is_blamed_for_it():
    quiet = alone(30)
    r = req(40.0, 0.001, 1.0, 0.5, prompt=1000)  # ten times the typical 100 tokens
    t = timeline(*quiet, r, req(70.0, 0.001, 0.05, 1.0))
    ex = why(r, t)
    assert kinds(ex) == ["long_prompt"]
    c = ex.causes[0]
    assert c.explained_s == pytest.approx(0.9, rel=1e-3)
    assert c.detail["typical_prompt_tokens"] == 100
    assert "its own 1,000-token prompt against 100 typical" in c.text


def test_infrastructure_causes_keep_their_time_and_the_engine_explains_what_is_left():
    running = [req(0.0, 0.001, 0.05, 3.0) for _ in range(4)]
    r = req(0.0, 1.0, 0.05, 0.5)
    # A run-queue wait measured inside the queue time.
    rq = Event(T0 + int(0.2 * S), T0 + int(0.6 * S), "runqueue_wait", "cgroup:/w", 0.4, {"cpu": 3, "tid": 7})
    ex = why(r, timeline(*running, r), [rq], batch_limit=4)
    by = {c.kind: c for c in ex.causes}
    assert by["runqueue_wait"].explained_s == pytest.approx(0.4, rel=1e-3)
    assert by["queueing"].explained_s == pytest.approx(0.6, rel=0.01)
    assert sum(c.share for c in ex.causes) <= 1.0 + 1e-9
    assert ex.explained_s <= r.e2e


def test_a_share_too_small_is_evidence_not_a_cause():
    running = [req(0.0, 0.001, 0.05, 30.0) for _ in range(2)]
    r = req(0.0, 0.1, 0.05, 20.0)  # queued 0.1 s of 20 s
    ex = why(r, timeline(*running, r), batch_limit=2)
    assert "queueing" not in kinds(ex)
    assert [c.kind for c in ex.evidence] == ["queueing"]


def test_neighbours_that_arrive_later_are_seen_when_the_request_is_explained_again():
    r = req(0.5, 1.5, 0.05, 0.5)
    t = timeline(r)
    first = why(r, t, batch_limit=4)
    assert kinds(first) == []
    recent = RecentRequests(10)
    recent.add(first)
    for _ in range(4):  # the batch it queued behind finishes later, and its spans come in now
        t.add("w", req(0.0, 0.001, 0.05, 3.0))
    (again,) = recent.by_trace(r.trace_id)
    assert kinds(again) == ["queueing"]


def test_the_timeline_is_bounded_and_ignores_a_re_sent_span():
    t = LoadTimeline(horizon_s=10, requests=100, settle_s=1)
    r = req(0.0, 0.001, 0.05, 0.1)
    assert t.add("w", r) is not None and t.add("w", r) is None
    for i in range(300):
        t.add("w", req(1.0 + i * 0.01, 0.001, 0.05, 0.1))
    assert t.size() == 100
    t.add("w", req(100.0, 0.001, 0.05, 0.1))  # everything else ended over 10 s before it
    assert t.size() == 1


def test_after_a_busy_spell_the_baseline_learns_again_within_a_sampled_stride():
    # 40 requests decoding side by side (none alone: each is looked at less and less),
    # then 40 alone: the first alone one found puts every later one back in the look.
    busy = [req(0.01 * i, 0.001, 0.05, 2.0) for i in range(40)]
    quiet = alone(40, start=10.0)
    t = timeline(*busy, *quiet, settle=0.5)
    last = quiet[-1]
    base = t.view("w", Run.of(last)).baseline
    assert 40 - 16 - 1 <= base.tpot_samples <= 40 - 1  # the last one has not settled yet
    assert base.tpot_s == pytest.approx(0.01, rel=0.05)
