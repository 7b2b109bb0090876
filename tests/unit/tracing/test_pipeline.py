"""The ingest pipeline over the EventStore: scope lookup, open GPU windows, counts."""

from agent.events import Event, EventStore
from agent.paths import Paths
from agent.services import Services
from agent.tracing import spans as sp
from agent.tracing.metrics import RequestMetrics
from agent.tracing.pipeline import Enricher
from agent.tracing.recent import RecentRequests
from agent.tracing.scope import ScopeResolver
from agent.tracing.settings import ExplainSettings

from .spanfactory import T0, export

MS = 1_000_000


def _enricher(events, services=None):
    s = ExplainSettings()
    services = services or Services()
    return Enricher(events, s, ScopeResolver(Paths(), [], services), RequestMetrics(),
                    RecentRequests(100), services)


def test_open_gpu_window_counts_as_a_cause():
    store = EventStore()
    opened = Event(T0 + 200 * MS, T0 + 900 * MS, "gpu_throttle", "gpu:GPU-x", 0.7,
                   {"reason": "HwThermalSlowdown", "state": "open"})
    e = _enricher(store, Services(gpu_open_events=lambda: [opened]))
    req = export(1, pid=None, start_ns=T0, ttft=0.4, e2e=1.0)
    assert e.process(req).llm_request == 1
    (ex,) = e.recent.by_trace(req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex())
    assert ex.top_kind == "gpu_throttle" and ex.causes[0].explained_s == 0.7


def test_counts_and_annotation_only_when_asked():
    store = EventStore()
    store.add(Event(T0 + 10 * MS, T0 + 60 * MS, "worker_restart", "worker:vllm", 1, {"reason": "health"}))
    e = _enricher(store)
    req = export(2, pid=None, start_ns=T0, other=1)
    c = e.process(req)
    assert (c.llm_request, c.other, c.invalid) == (2, 1, 0)
    spans = req.resource_spans[0].scope_spans[0].spans
    assert not any(kv.key.startswith("infernode.") for kv in spans[0].attributes)
    e.annotate = True
    req = export(1, pid=None, start_ns=T0)
    e.process(req)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    attrs = sp.attributes(span.attributes)
    assert attrs["infernode.worker"] == "vllm"
    assert attrs["infernode.cause.0.kind"] == "worker_restart"
    assert attrs["infernode.cause"].startswith("worker restarted (health)")
    assert [ev.name for ev in span.events] == ["infernode.worker_restart"]
    assert sp.attributes(span.events[0].attributes)["infernode.reason"] == "health"


def test_a_failing_open_events_service_does_not_cost_the_span():
    def broken():
        raise RuntimeError("nvml gone")

    e = _enricher(EventStore(), Services(gpu_open_events=broken))
    assert e.process(export(1, pid=None)).llm_request == 1


def test_a_span_enriched_twice_keeps_one_of_each_attribute():
    e = _enricher(EventStore())
    e.annotate = True
    req = export(1, pid=None, start_ns=T0)
    e.process(req)
    e.process(req)
    keys = [kv.key for kv in req.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert keys.count("infernode.cause") == 1 and keys.count("infernode.worker") == 1


# ---- what vLLM 0.33 really sends (../shared/reference/vllm-0.33.md) -------------

def _uptime_abort(e2e: float = 0.004) -> dict:
    """The span vLLM sends for a request its engine aborted before scheduling it
    (reference 2.4): queue 0, prefill and inference = EngineCore's monotonic clock,
    decode 0, no tokens; TTFT and e2e are the frontend's few milliseconds."""
    return {sp.TTFT: e2e, sp.E2E: e2e, sp.QUEUE: 0.0, sp.PREFILL: 352_611.2, sp.DECODE: 0.0,
            sp.INFERENCE: 352_611.2, sp.COMPLETION_TOKENS: 0}


def _histogram_count(e: Enricher, name: str) -> float:
    return sum(s.value.buckets[-1][1] for s in e.metrics.samples() if s.name == name)


def test_engine_aborted_spans_are_counted_aborted_and_kept_out_of_every_request_metric():
    e = _enricher(EventStore())
    req = export(4, pid=None, start_ns=T0, overrides={1: _uptime_abort(), 3: {sp.COMPLETION_TOKENS: 0}})
    c = e.process(req)
    assert (c.llm_request, c.aborted, c.invalid) == (2, 2, 0)
    assert (e.counts.llm_request, e.counts.aborted) == (2, 2)
    assert _histogram_count(e, "infernode_request_prefill_seconds") == 2
    assert max(s.value.sum for s in e.metrics.samples() if s.name == "infernode_request_prefill_seconds") < 10
    spans = req.resource_spans[0].scope_spans[0].spans
    assert e.recent.by_trace(spans[1].trace_id.hex()) == []
    assert e.recent.by_trace(spans[3].trace_id.hex()) == []
    assert len(e.recent.by_trace(spans[0].trace_id.hex())) == 1
    assert e.worker_spans == {"vllm": 4}  # coverage counts every span the worker sent
    # ...and the rolling p99s never saw them: each phase's window holds the two served requests.
    assert {len(r.values) for phases in e.judge._rolling.values() for r in phases.values()} == {2}


def test_a_served_request_with_phases_longer_than_e2e_is_invalid_not_slow():
    e = _enricher(EventStore())
    c = e.process(export(3, pid=None, overrides={0: {sp.PREFILL: 5.0}, 1: {sp.E2E: 1e12}, 2: {sp.TTFT: 3.0}}))
    assert (c.llm_request, c.invalid, c.aborted) == (0, 3, 0)
    assert _histogram_count(e, "infernode_request_e2e_seconds") == 0


def test_phase_slack_lets_clock_domains_disagree_a_little():
    # e2e is the API server's wall clock, phases EngineCore's monotonic one.
    e = _enricher(EventStore())
    c = e.process(export(1, pid=None, e2e=1.0, overrides={0: {sp.INFERENCE: 1.03, sp.PREFILL: 0.38}}))
    assert c.llm_request == 1


def test_non_finite_and_overflowing_values_cost_only_their_own_span():
    e = _enricher(EventStore())
    bad = {1: {sp.E2E: float("inf")}, 2: {sp.TTFT: float("nan")}, 3: {sp.PROMPT_TOKENS: 1e300},
           4: {sp.DECODE: -1.0}, 5: {sp.QUEUE: 1e300}, 6: {sp.COMPLETION_TOKENS: 2.5}}
    c = e.process(export(8, pid=None, overrides=bad))
    assert (c.llm_request, c.invalid) == (2, 6)
    assert _histogram_count(e, "infernode_request_e2e_seconds") == 2


def test_pid_is_parsed_strictly():
    assert sp.parse_pid("4242") == 4242 and sp.parse_pid(4242) == 4242
    for raw in ("²", "-1", "0", "１２", " 12", "99999999", True, 1.5, None, "12a", str(1 << 22)):
        assert sp.parse_pid(raw) is None, raw
    e = _enricher(EventStore())
    assert e.process(export(2, pid="²")).llm_request == 2  # no pid: the spans still count


def test_model_name_comes_from_the_managed_worker():
    # vLLM sets neither gen_ai.response.model nor gen_ai.request.model (item 4).
    from agent.worker.settings import WorkerSettings

    workers = [WorkerSettings(name="a", command=["vllm"]), WorkerSettings(name="b", command=["vllm"], port=8001)]
    services = Services(worker_model_of={"a": "meta-llama/Llama-3.1-8B", "b": None}.get)
    e = Enricher(EventStore(), ExplainSettings(), ScopeResolver(Paths(), workers, services), RequestMetrics(),
                 RecentRequests(100), services)
    e.process(export(1, pid=None, service="vllm-a"))
    e.process(export(1, pid=None, service="vllm-b"))
    e.process(export(1, pid=None, service="stray", overrides={0: {sp.RESPONSE_MODEL: "their-own"}}))
    models = {(s.labels["worker"], s.labels["model_name"]) for s in e.metrics.samples()
              if s.name == "infernode_request_e2e_seconds"}
    assert models == {("a", "meta-llama/Llama-3.1-8B"), ("b", "unknown"), ("stray", "their-own")}


def test_startup_spans_of_a_managed_worker_go_to_the_supervisor():
    from agent.worker.settings import WorkerSettings

    seen = []
    workers = [WorkerSettings(name="a", command=["vllm"]), WorkerSettings(name="b", command=["vllm"], port=8001)]
    services = Services(worker_startup_phase=lambda *a: seen.append(a))
    e = Enricher(EventStore(), ExplainSettings(), ScopeResolver(Paths(), workers, services), RequestMetrics(),
                 RecentRequests(100), services)
    req = export(0, pid=None, service="vllm-b", other=1)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.name = "Load weights"
    assert e.process(req).startup == 1
    assert seen == [("b", "Load weights", span.start_time_unix_nano, span.end_time_unix_nano)]
    stray = export(0, pid=None, service="someone-else", other=1)
    stray.resource_spans[0].scope_spans[0].spans[0].name = "Load weights"
    assert e.process(stray).other == 1 and len(seen) == 1


def test_invalid_spans_still_count_for_the_worker_that_sent_them():
    # infernode_request_spans_total{worker} is every llm_request span of the worker,
    # of any kind: a span that does not parse, or is implausible, still arrived.
    e = _enricher(EventStore())
    bad = {1: {sp.E2E: float("inf")}, 2: {sp.PREFILL: 50.0}, 3: {sp.COMPLETION_TOKENS: 1.5}}
    c = e.process(export(5, pid=None, service="vllm-a", start_ns=T0, overrides=bad))
    assert (c.llm_request, c.invalid) == (2, 3)
    # A pid that is not one ("²") is no pid: the service name names the sender, of a
    # span that does not parse too.
    c = e.process(export(2, pid="²", service="vllm-b", start_ns=T0, overrides={0: {sp.TTFT: "soon"}}))
    assert (c.llm_request, c.invalid) == (1, 1)
    assert e.worker_spans == {"vllm-a": 5, "vllm-b": 2}


def test_by_default_a_small_share_is_evidence_and_the_verdict_no_known_cause():
    """The shipped minimum share (explain.min_cause_share, 5%) applies to every
    received span: a 6 ms GPU throttle in a 1 s request names nothing."""
    store = EventStore()
    store.add(Event(T0 + 200 * MS, T0 + 206 * MS, "gpu_throttle", "gpu:GPU-x", 0.006, {"reason": "SwPowerCap"}))
    e = _enricher(store)
    req = export(1, pid=None, start_ns=T0, ttft=0.4, e2e=1.0)
    e.process(req)
    (ex,) = e.recent.by_trace(req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex())
    assert ex.causes == [] and ex.verdict == "no known cause" and ex.top_kind is None
    assert [c.kind for c in ex.evidence] == ["gpu_throttle"]
