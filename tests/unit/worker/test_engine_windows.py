"""vLLM's scheduler gauges and counters, scrape by scrape, as engine windows
(agent/worker/engine_windows.py), from the expositions the vLLM stand-in renders
with vLLM's names and labels."""

from __future__ import annotations

from agent.events import EventStore
from agent.worker.engine_windows import EngineWindows
from agent.worker.scrape import parse_vllm_metrics
from tests.doubles.vllm_standin import Metrics

S = 10**9


def scrape(m: Metrics, extra: str = ""):
    return parse_vllm_metrics(m.render() + extra, "w0", "0").samples


def test_a_busy_window_carries_the_gauges_at_its_end_and_the_preemptions_inside_it():
    m = Metrics("standin/tiny", 2048)
    w = EngineWindows("w0")
    assert w.observe(scrape(m), 10 * S) == []  # the first scrape opens the first window
    m.running, m.waiting, m.kv_usage, m.preemptions = 4, 3, 0.95, 2
    evs = w.observe(scrape(m), 11 * S)
    by = {e.kind: e for e in evs}
    load = by["engine_load"]
    assert (load.start_ns, load.end_ns, load.subject) == (10 * S, 11 * S, "worker:w0")
    assert load.magnitude == 3 and load.attributes == {"running": 4, "waiting": 3, "kv_cache_usage": 0.95}
    assert by["engine_preemption"].magnitude == 2
    store = EventStore(1 << 20)
    for e in evs:
        store.add(e)  # declared kinds, storable
    # The next window counts only its own preemptions.
    m.preemptions = 3
    assert {e.kind: e.magnitude for e in w.observe(scrape(m), 12 * S)}["engine_preemption"] == 1


def test_an_idle_worker_writes_no_windows_and_a_restarted_vllm_counts_from_zero():
    m = Metrics("standin/tiny", 2048)
    m.preemptions = 50
    w = EngineWindows("w0")
    w.observe(scrape(m), 1 * S)
    assert w.observe(scrape(m), 2 * S) == []
    m.preemptions = 4  # the counter went down: a new vLLM process
    assert [(e.kind, e.magnitude) for e in w.observe(scrape(m), 3 * S)] == [("engine_preemption", 4)]


def test_waiting_by_reason_and_admission_rejections_when_vllm_exports_them():
    m = Metrics("standin/tiny", 2048)
    w = EngineWindows("w0")
    # vLLM 0.33's families (the reference, section 3); the stand-in does not model them.
    extra = ("# HELP vllm:num_requests_waiting_by_reason x\n# TYPE vllm:num_requests_waiting_by_reason gauge\n"
             'vllm:num_requests_waiting_by_reason{{engine="0",model_name="standin/tiny",reason="capacity"}} {c}\n'
             "# HELP vllm:admission_rejections_total x\n# TYPE vllm:admission_rejections_total counter\n"
             'vllm:admission_rejections_total{{model_name="standin/tiny",reason="max_num_queued_reqs"}} {r}\n')
    w.observe(scrape(m, extra.format(c=0, r=10)), 1 * S)
    m.waiting = 5
    evs = w.observe(scrape(m, extra.format(c=5, r=17)), 2 * S)
    by = {e.kind: e for e in evs}
    assert by["engine_load"].attributes["waiting_capacity"] == 5
    assert by["engine_rejection"].magnitude == 7
    assert by["engine_rejection"].attributes == {"reason": "max_num_queued_reqs"}


def test_a_lost_scrape_starts_the_windows_afresh():
    m = Metrics("standin/tiny", 2048)
    w = EngineWindows("w0")
    w.observe(scrape(m), 1 * S)
    w.reset()
    m.running = 2
    assert w.observe(scrape(m), 30 * S) == []  # no window spans the gap
    assert [e.kind for e in w.observe(scrape(m), 31 * S)] == ["engine_load"]
