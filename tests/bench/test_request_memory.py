"""Memory the agent holds per request, and where it stops growing.

A soak once showed RSS rising about 2.9 KB per request with no plateau after 1,500
requests. What grows with requests is bounded by configuration: the requests kept
for `infernode explain` (explain.keep_requests, 10,000), the rolling p99 windows
(explain.p99_window per worker and phase), and the per-worker span counters (256
workers). This feeds 3 x keep_requests spans through the enrichment pipeline with
no events (so events add nothing), and measures Python allocations (tracemalloc)
as the kept requests fill: it grows by about the same per request until the bound,
then stays.

Prints KB per request and the plateau; asserts the plateau (an allocation bound
that does not depend on timing).
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from agent.events import EventStore
from agent.paths import Paths
from agent.tracing.metrics import RequestMetrics
from agent.tracing.pipeline import Enricher
from agent.tracing.recent import RecentRequests
from agent.tracing.scope import ScopeResolver
from agent.tracing.settings import ExplainSettings
from agent.tracing.spans import decode_export
from tests.unit.tracing.spanfactory import T0, export

pytestmark = pytest.mark.bench

BATCH = 100


def test_memory_per_request_plateaus_at_keep_requests(tmp_path):
    settings = ExplainSettings()
    keep = settings.keep_requests
    enricher = Enricher(EventStore(), settings, ScopeResolver(Paths(tmp_path), [], {}), RequestMetrics(),
                        RecentRequests(keep))
    fed = 0
    points: list[tuple[int, int]] = []
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    while fed < 3 * keep:
        body = export(BATCH, pid=None, service="vllm-mem", start_ns=T0 + fed * 10**7).SerializeToString()
        enricher.process(decode_export(body))
        fed += BATCH
        if fed % (keep // 4) == 0:
            gc.collect()
            points.append((fed, tracemalloc.get_traced_memory()[0] - base))
    tracemalloc.stop()
    assert enricher.counts.llm_request == fed
    per_request = points[3][1] / points[3][0]  # up to keep_requests
    at_bound = dict(points)[keep]
    last = points[-1][1]
    print(f"\n[memory per request] {per_request / 1024:.2f} KB per request while filling; at keep_requests "
          f"({keep}) {at_bound / 2**20:.1f} MiB; after {fed} requests {last / 2**20:.1f} MiB; "
          "points (requests, MiB): " + ", ".join(f"({n}, {b / 2**20:.1f})" for n, b in points))
    # Past the bound, what is kept is replaced, not added to.
    assert last <= at_bound * 1.05 + 256 * 1024
