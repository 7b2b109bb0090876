"""Span ingest with the engine's load timeline: 8 workers, each finishing 100
requests a second (about 120 in flight at once), their spans arriving in end order
in exports of 50 per worker, with the eBPF outlier density of test_span_ingest.py
in the store. Spans per CPU-second and p99 enrichment latency on one core, and the
timeline's memory at its bound.

Prints its numbers; asserts only correctness (every span enriched, the timeline
at its bound), never timing.
"""

from __future__ import annotations

import gc
import os
import random
import time
import tracemalloc

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agent.events import EventStore
from agent.paths import Paths
from agent.tracing import spans as sp
from agent.tracing.engine_load import LoadTimeline
from agent.tracing.metrics import RequestMetrics
from agent.tracing.pipeline import Enricher
from agent.tracing.recent import RecentRequests
from agent.tracing.scope import ScopeResolver
from agent.tracing.settings import ExplainSettings
from agent.tracing.spans import decode_export
from agent.worker.settings import WorkerSettings
from tests.bench.test_span_ingest import _events

pytestmark = pytest.mark.bench

WORKERS = 8
RATE = 100  # requests per second per worker
SECONDS = 30
PER_EXPORT = 50
PID0 = 5000


def _root(tmp_path) -> Paths:
    for i in range(WORKERS):
        cg = f"/inference.slice/infernode-worker@w{i}.service"
        (tmp_path / "proc" / str(PID0 + i)).mkdir(parents=True)
        (tmp_path / "proc" / str(PID0 + i) / "cgroup").write_text(f"1:name=systemd:{cg}\n0::/\n")
        d = tmp_path / "sys/fs/cgroup/systemd" / cg.lstrip("/")
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text(f"{PID0 + i}\n")
    return Paths(tmp_path)


def _requests(t0: int, rng: random.Random) -> list[tuple[int, int, dict]]:
    """(end ns, worker, attributes) of every request, in end order: queue 5-60 ms,
    prefill 50-250 ms, decode 0.5-1.5 s at 20 ms per token."""
    out = []
    for w in range(WORKERS):
        for k in range(RATE * SECONDS):
            start = t0 + int(k * 1e9 / RATE) + rng.randrange(10_000_000)
            queue, prefill, decode = rng.uniform(0.005, 0.06), rng.uniform(0.05, 0.25), rng.uniform(0.5, 1.5)
            ttft = 0.002 + queue + prefill
            e2e = ttft + decode + 0.002
            attrs = {sp.TTFT: ttft, sp.E2E: e2e, sp.QUEUE: queue, sp.PREFILL: prefill, sp.DECODE: decode,
                     sp.INFERENCE: prefill + decode, sp.PROMPT_TOKENS: rng.randrange(50, 2000),
                     sp.COMPLETION_TOKENS: int(decode / 0.02) + 1, sp.REQUEST_ID: f"cmpl-{w}-{k}"}
            out.append((start + int(e2e * 1e9), w, start, attrs))
    out.sort(key=lambda x: x[0])
    return out


def _exports(reqs) -> list[bytes]:
    """Each worker's finished requests, PER_EXPORT at a time, in the order they finish."""
    pending: dict[int, list] = {}
    bodies = []
    for end, w, start, attrs in reqs:
        batch = pending.setdefault(w, [])
        batch.append((start, end, attrs))
        if len(batch) == PER_EXPORT:
            req = ExportTraceServiceRequest()
            rs = req.resource_spans.add()
            rs.resource.attributes.extend(sp.key_values({"service.name": f"vllm-w{w}", "vllm.process_id": str(PID0 + w)}))
            ss = rs.scope_spans.add()
            for s, e, a in batch:
                span = ss.spans.add()
                span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
                span.kind = Span.SPAN_KIND_SERVER
                span.name = "llm_request"
                span.start_time_unix_nano, span.end_time_unix_nano = s, e
                span.attributes.extend(sp.key_values(a))
            bodies.append(req.SerializeToString())
            pending[w] = []
    return bodies


def test_span_ingest_with_the_load_timeline(tmp_path):
    old_affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {sorted(old_affinity)[-1]})  # one core
    try:
        rng = random.Random(11)
        t0 = time.time_ns() - (SECONDS + 5) * 10**9
        store = EventStore(max_bytes=256 * 1024 * 1024)
        # The outlier density of the hour-long case in test_span_ingest.py, over these seconds.
        store.extend(ev for ev in _events(t0, 3600, rng) if ev.end_ns < t0 + (SECONDS + 5) * 10**9)
        settings = ExplainSettings()
        workers = [WorkerSettings(name=f"w{i}", gpus=[i], port=8000 + i, command=["vllm", "serve", "m"])
                   for i in range(WORKERS)]
        enricher = Enricher(store, settings, ScopeResolver(_root(tmp_path), workers), RequestMetrics(),
                            RecentRequests(settings.keep_requests))
        bodies = _exports(_requests(t0, rng))
        n = len(bodies) * PER_EXPORT
        gc.collect()
        lat: list[float] = []
        t, c = time.perf_counter(), time.thread_time()
        for i, body in enumerate(bodies):
            if i % 20:
                enricher.process(decode_export(body))
                continue
            # Every 20th export, span by span: the enrichment latency of each.
            req = decode_export(body)
            enricher.process(ExportTraceServiceRequest())  # the drain and open events, as process() does
            res = sp.attributes(req.resource_spans[0].resource.attributes)
            for span in req.resource_spans[0].scope_spans[0].spans:
                r = sp.parse_request_span(span, res)
                s = time.perf_counter()
                enricher.enrich(r, span)
                lat.append(time.perf_counter() - s)
        wall, cpu = time.perf_counter() - t, time.thread_time() - c
        sampled = len(lat)
        assert enricher.counts.llm_request + sampled == n and enricher.counts.invalid == 0
        lat.sort()
        kept = enricher.load.size()
        recent = [s.explanation() for s in list(enricher.recent._items.values())[-2000:]]  # noqa: SLF001
        engine = sum(1 for ex in recent for cz in ex.causes if cz.kind in ("queueing", "batch_interference",
                                                                            "preemption", "long_prompt"))
        load = os.getloadavg()[0]
    finally:
        os.sched_setaffinity(0, old_affinity)
    print(f"\n[engine load] {WORKERS} workers x {RATE} requests/s for {SECONDS} s: {n:,} spans, {len(store):,} "
          f"events in the store; timeline holds {kept:,} requests; {engine} engine causes named in the last 2000")
    print(f"[engine load] decode+enrich on one core: {n / cpu:,.0f} spans per CPU-second ({n / wall:,.0f} spans/s "
          f"wall, load average {load:.1f}); enrichment per span (wall, {sampled} sampled): "
          f"p50 {lat[len(lat) // 2] * 1e6:.0f} us, p99 {lat[int(len(lat) * 0.99)] * 1e6:.0f} us")


def test_load_timeline_memory_at_its_bound():
    bound = ExplainSettings().engine.requests
    rng = random.Random(5)
    from tests.unit.tracing.spanfactory import request

    spans = [request(start_ms=i * 1.25, pid=1, prompt=rng.randrange(50, 2000)) for i in range(bound + 10_000)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t = LoadTimeline(horizon_s=3600, requests=bound)
    for i, r in enumerate(spans):
        t.add(f"w{i % WORKERS}", r)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert t.size() <= bound
    print(f"\n[engine load] timeline bound {bound:,} requests ({WORKERS} workers): {t.size():,} held, "
          f"{used / 2**20:.1f} MiB measured (tracemalloc), {used / t.size():.0f} bytes per request")
