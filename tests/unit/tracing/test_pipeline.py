"""The ingest pipeline over the EventStore: scope lookup, open GPU windows, counts."""

from agent.events import Event, EventStore
from agent.paths import Paths
from agent.tracing.metrics import RequestMetrics
from agent.tracing.pipeline import Enricher
from agent.tracing.recent import RecentRequests
from agent.tracing.scope import ScopeResolver
from agent.tracing.settings import ExplainSettings
from agent.tracing import spans as sp

from .spanfactory import T0, export

MS = 1_000_000


def _enricher(events, services=None):
    s = ExplainSettings()
    return Enricher(events, s, ScopeResolver(Paths(), [], services or {}), RequestMetrics(),
                    RecentRequests(100), services or {})


def test_open_gpu_window_counts_as_a_cause():
    store = EventStore()
    opened = Event(T0 + 200 * MS, T0 + 900 * MS, "gpu_throttle", "gpu:GPU-x", 0.7,
                   {"reason": "HwThermalSlowdown", "state": "open"})
    e = _enricher(store, {"gpu_open_events": lambda: [opened]})
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

    e = _enricher(EventStore(), {"gpu_open_events": broken})
    assert e.process(export(1, pid=None)).llm_request == 1


def test_a_span_enriched_twice_keeps_one_of_each_attribute():
    e = _enricher(EventStore())
    e.annotate = True
    req = export(1, pid=None, start_ns=T0)
    e.process(req)
    e.process(req)
    keys = [kv.key for kv in req.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert keys.count("infernode.cause") == 1 and keys.count("infernode.worker") == 1
