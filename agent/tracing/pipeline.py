"""Ingest of one OTLP export: read llm_request spans, correlate them with the
event store, record request metrics, keep the explanation, and enrich the span in
place (span events + `infernode.*` attributes) for forwarding. Other spans pass
through untouched.

Synchronous and single-threaded by design: the receivers hand each export to one
worker thread, so the rolling p99s need no lock and a burst of spans cannot stall
the event loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agent.event_kinds import KINDS, Role
from agent.events import NODE, AttrValue, Event, EventStore
from agent.services import Services
from agent.tracing import delivery
from agent.tracing import spans as sp
from agent.tracing.correlate import explain
from agent.tracing.delivery import ClientDelay
from agent.tracing.engine_causes import EngineSettings
from agent.tracing.engine_load import LoadTimeline, Run
from agent.tracing.metrics import RequestMetrics
from agent.tracing.ranking import Phase, RequestScope, concerns, phase_of
from agent.tracing.recent import RecentRequests
from agent.tracing.scope import ScopeResolver
from agent.tracing.settings import ExplainSettings
from agent.tracing.slow import SlowJudge, latencies
from agent.tracing.wording import Explanation

if TYPE_CHECKING:
    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

log = logging.getLogger("infernode.tracing")

# A span is a message, not a log: keep the events attached to one bounded, longest first.
MAX_SPAN_EVENTS = 16
MAX_CAUSE_ATTRS = 5
# Unmanaged senders name themselves: a bound on the per-worker span series they add.
MAX_WORKER_SERIES = 256


# vLLM's start-up spans (vllm/model_executor, v1/engine; the reference lists them):
# each is one phase of bringing a worker up, exported when tracing is on.
STARTUP_SPANS = frozenset({
    "Overall Loading", "Download weights - HF", "Load weights", "Loading (GPU)", "Compile graph",
    "Capture model", "Allocate KV cache", "Warmup (GPU)",
})


@dataclass
class IngestCounts:
    llm_request: int = 0
    other: int = 0
    invalid: int = 0
    aborted: int = 0
    startup: int = 0

    def add(self, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)


class Enricher:
    def __init__(self, events: EventStore, settings: ExplainSettings, resolver: ScopeResolver,
                 metrics: RequestMetrics, recent: RecentRequests, services: Services | None = None) -> None:
        self.events = events
        self.services = services if services is not None else Services()
        self.settings = settings
        self.resolver = resolver
        self.metrics = metrics
        self.recent = recent
        self.judge = SlowJudge(settings.slo, settings.p99_window, settings.p99_min_requests)
        self.counts = IngestCounts()
        # llm_request spans of any kind per worker: against vllm:request_success_total,
        # the share of the worker's requests whose spans arrived.
        self.worker_spans: dict[str, int] = {}
        self.enrich_seconds_total = 0.0
        # Writing events and causes into the span only pays off when it is forwarded.
        self.annotate = False
        e = settings.engine
        self.load = LoadTimeline(e.horizon, e.requests, e.settle, e.baseline_min_samples)
        self.engine = EngineSettings(settings.min_cause, e.kv_full, e.long_prompt_ratio, settings.min_cause_share)
        self._open: list[Event] = []

    def _open_events(self) -> list[Event]:
        """Windows still open, which their sources add to the store only when they
        close, and a request can end inside one: GPU throttles, tuning drift."""
        out: list[Event] = []
        for name, fn in (("gpu_open_events", self.services.gpu_open_events),
                         ("tuning_open_events", self.services.tuning_open_events)):
            if fn is None:
                continue
            try:
                out.extend(fn())
            except Exception:  # noqa: BLE001 - a source's problem must not cost the span
                log.debug("%s failed", name, exc_info=True)
        return out

    def _drain_kernel_sums(self) -> None:
        """Run-queue and block I/O waits still summed in the kernel (the eBPF collector
        writes them every 100 ms) are written now, so a span that just ended sees its
        last ones."""
        fn = self.services.ebpf_drain_pressure
        if fn is None:
            return
        try:
            fn()
        except Exception:  # noqa: BLE001 - an eBPF problem must not cost the span
            log.debug("ebpf.drain_pressure failed", exc_info=True)

    def process(self, req: ExportTraceServiceRequest) -> IngestCounts:
        """Each span is handled on its own and counted as it is: one that cannot be
        used is counted invalid and costs its neighbours nothing."""
        counts = IngestCounts()
        self._drain_kernel_sums()
        self._open = self._open_events()
        for rs in req.resource_spans:
            res_attrs: dict[str, Any] | None = None
            for ss in rs.scope_spans:
                for span in ss.spans:
                    if span.name != sp.LLM_REQUEST and span.name not in STARTUP_SPANS:
                        kind = "other"
                    else:
                        if res_attrs is None:
                            res_attrs = sp.attributes(rs.resource.attributes)
                        try:
                            kind = self._one(span, res_attrs)
                        except Exception as e:  # noqa: BLE001 - one span never costs the export
                            kind = "invalid"
                            log.debug("llm_request span not usable: %s: %s", type(e).__name__, e)
                            if span.name == sp.LLM_REQUEST:
                                self._count_sender(self._sender(res_attrs))
                    counts.add(kind)
                    self.counts.add(kind)
        return counts

    def _one(self, span: Span, res_attrs: dict[str, Any]) -> str:
        if span.name in STARTUP_SPANS:
            return self._startup(span, res_attrs)
        try:
            r = sp.parse_request_span(span, res_attrs)
        except sp.SpanError as e:
            log.debug("llm_request span not usable: %s", e)
            # Still the worker's span: it counts against the worker's finished requests.
            self._count_sender(self._sender(res_attrs))
            return "invalid"
        worker = self.resolver.scope(r).worker
        self._count_sender(worker)
        if sp.aborted(r, self.settings.max_e2e):
            log.debug("llm_request span %s of %s: aborted by the engine (no tokens generated)", r.trace_id, worker)
            return "aborted"
        if (problem := sp.implausible(r, self.settings.max_e2e)) is not None:
            log.debug("llm_request span %s of %s not plausible: %s", r.trace_id, worker, problem)
            return "invalid"
        if r.model_name == "unknown":
            model = self._model_of(worker)
            if model:
                r = replace(r, model_name=model)
        self.enrich(r, span)
        return "llm_request"

    def _count_sender(self, worker: str) -> None:
        if worker in self.worker_spans or len(self.worker_spans) < MAX_WORKER_SERIES:
            self.worker_spans[worker] = self.worker_spans.get(worker, 0) + 1

    def _sender(self, res_attrs: dict[str, Any]) -> str:
        """The worker a span's resource names, for a span that did not parse."""
        return self.resolver.worker_name(sp.parse_pid(res_attrs.get(sp.PROCESS_ID)),
                                         str(res_attrs.get(sp.SERVICE_NAME) or ""))

    def _model_of(self, worker: str) -> str | None:
        fn = self.services.worker_model_of
        return fn(worker) if fn is not None else None

    def _startup(self, span: Span, res_attrs: dict[str, Any]) -> str:
        """A start-up phase of a managed worker goes to the supervisor; another's is
        passed through as any span."""
        worker = self.resolver.managed_worker(sp.parse_pid(res_attrs.get(sp.PROCESS_ID)),
                                              str(res_attrs.get(sp.SERVICE_NAME, "")))
        fn = self.services.worker_startup_phase
        if worker is None or fn is None:
            return "other"
        start, end = int(span.start_time_unix_nano), int(span.end_time_unix_nano)
        if end < start:
            return "invalid"
        fn(worker, span.name, start, end)
        return "startup"

    def correlate(self, r: sp.RequestSpan, run: Run, scope: RequestScope) -> Explanation:
        end_ns = r.start_ns + int(r.e2e * 1e9)
        subjects = scope.subjects()
        found = self.events.query(r.start_ns, end_ns, subjects, subject_prefixes=scope.subject_prefixes())
        # Found by its exact subject is enough, except node-wide events that still need a look.
        exact = frozenset(subjects) - {NODE}
        relevant = [ev for ev in found if ev.subject in exact or concerns(ev, scope)]
        relevant.extend(ev for ev in self._open if ev.overlaps(r.start_ns, end_ns) and concerns(ev, scope))
        slow = self.judge.judge(scope.worker, latencies(r))
        load, worker = self.load, scope.worker
        return explain(r, scope, relevant, slow or None, self.settings.min_cause, self.settings.min_cause_share,
                       lambda: load.view(worker, run), self.engine, lambda: self.client_delay(r, run, scope))

    def client_delay(self, r: sp.RequestSpan, run: Run, scope: RequestScope) -> ClientDelay | None:
        """The retransmits on the worker's port from the request's arrival to TAIL
        after its span, as the store holds them now. Without the worker's ports
        known, no connection is told from another: none."""
        ports = frozenset({scope.port}) if scope.port is not None else scope.listen_ports
        if not ports:
            return None
        start, end = delivery.window(r)
        found = [ev for ev in self.events.query(start, end, [NODE], kinds=[delivery.KIND]) if concerns(ev, scope)]
        if not found:
            return None
        return delivery.client_delay(r, found, ports, lambda t: self.load.others_at(scope.worker, run, t))

    def enrich(self, r: sp.RequestSpan, span: Span | None = None) -> Explanation:
        t0 = time.perf_counter()
        # The request joins its worker's timeline first; a re-sent one is there already.
        scope = self.resolver.scope(r)
        run = self.load.add(scope.worker, r) or Run.of(r)
        ex = self.correlate(r, run, scope)
        self.metrics.observe(r, ex.worker, [str(s["phase"]) for s in ex.slow], ex.top_kind, ex.is_slow,
                             ex.seconds_by_kind)
        self.recent.add(ex)
        if span is not None and self.annotate:
            annotate_span(span, ex)
        self.enrich_seconds_total += time.perf_counter() - t0
        return ex


def annotate_span(span: Span, ex: Explanation) -> None:
    """Write the explanation onto the span: `infernode.*` attributes and one span
    event per overlapping node event (each at its own time), the longest first."""
    attrs: dict[str, str | int | float | bool] = {
        "infernode.worker": ex.worker,
        "infernode.slow": ex.is_slow,
        "infernode.cause": ex.verdict,
        "infernode.cause.count": len(ex.causes),
        "infernode.cause.explained_share": round(ex.explained_s / ex.request.e2e, 4) if ex.request.e2e > 0 else 0.0,
    }
    if ex.slow:
        attrs["infernode.slow.phases"] = ",".join(str(s["phase"]) for s in ex.slow)
    for i, c in enumerate(ex.causes[:MAX_CAUSE_ATTRS]):
        attrs[f"infernode.cause.{i}.kind"] = c.kind
        attrs[f"infernode.cause.{i}.text"] = c.text
        attrs[f"infernode.cause.{i}.share"] = round(c.share, 4)
        attrs[f"infernode.cause.{i}.seconds"] = round(c.explained_s, 6)
    _write_attributes(span.attributes, attrs)
    # The engine's windows are the worker's state, told by its causes; each is a
    # scrape interval long and would crowd the kernel's events out of the span.
    events = [ev for ev in ex.events if KINDS[ev.kind].role is not Role.ENGINE]
    chosen = sorted(events, key=lambda e: e.end_ns - e.start_ns, reverse=True)[:MAX_SPAN_EVENTS] \
        if len(events) > MAX_SPAN_EVENTS else events
    for ev in sorted(chosen, key=lambda e: e.start_ns):
        _add_span_event(span, ev, ex.phases)
    if len(events) > MAX_SPAN_EVENTS:
        span.dropped_events_count += len(events) - MAX_SPAN_EVENTS


def _write_attributes(kvs: RepeatedCompositeFieldContainer[KeyValue], attrs: dict[str, str | int | float | bool]) -> None:
    """Replace keys the sender already set (a re-sent span), append the rest in place
    (building KeyValue messages and copying them in costs twice as much)."""
    existing = {kv.key for kv in kvs} & attrs.keys()
    for k, v in attrs.items():
        if k in existing:
            sp.set_attribute(kvs, k, v)
        else:
            kv = kvs.add()
            kv.key = k
            sp.put_value(kv.value, v)


def _add_span_event(span: Span, ev: Event, phs: list[Phase]) -> None:
    se = span.events.add()
    se.time_unix_nano = max(ev.start_ns, 0)
    se.name = "infernode." + ev.kind
    kvs = se.attributes
    items: list[tuple[str, AttrValue]] = [
        ("infernode.subject", ev.subject), ("infernode.duration_s", ev.duration_s),
        ("infernode.magnitude", float(ev.magnitude)), ("infernode.phase", phase_of(ev.start_ns, phs)),
        *(("infernode." + k, v) for k, v in ev.attributes.items())]
    for k, v in items:
        kv = kvs.add()
        kv.key = k
        sp.put_value(kv.value, v)
