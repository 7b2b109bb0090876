import pytest

from agent.catalog import Catalog
from agent.exposition import render
from agent.tracing.metrics import RequestMetrics
from agent.tracing.specs import REQUEST_SPECS, TPOT_BUCKETS, TTFT_BUCKETS

from .spanfactory import request


def by_name(samples):
    out = {}
    for s in samples:
        out.setdefault(s.name, []).append(s)
    return out


def test_histograms_with_exemplars_per_bucket():
    m = RequestMetrics()
    a = request(ttft=0.003, decode=0.5, completion=11)
    b = request(ttft=0.7, decode=0.5, completion=11)
    c = request(ttft=0.6, decode=0.5, completion=1)  # tpot skipped
    for r in (a, b, c):
        m.observe(r, "llama")
    s = by_name(m.samples())
    (ttft,) = s["infernode_request_ttft_seconds"]
    assert ttft.labels == {"worker": "llama", "model_name": "m"}
    hv = ttft.value
    assert [b for b, _ in hv.buckets][:-1] == list(TTFT_BUCKETS) and hv.buckets[-1][0] == float("inf")
    counts = dict(hv.buckets)
    assert counts[0.001] == 0 and counts[0.005] == 1 and counts[0.5] == 1 and counts[0.75] == 3
    assert hv.sum == pytest.approx(1.303)
    assert hv.exemplars[0.005].labels == {"trace_id": a.trace_id}
    # the latest request landing in a bucket is its exemplar
    assert hv.exemplars[0.75].labels == {"trace_id": c.trace_id}
    (tpot,) = s["infernode_request_tpot_seconds"]
    assert tpot.value.count == 2 and [b for b, _ in tpot.value.buckets][:-1] == list(TPOT_BUCKETS)
    tokens = {x.name: x.value for x in s["infernode_request_completion_tokens_total"]}
    assert tokens == {"infernode_request_completion_tokens_total": 23.0}


def test_slow_and_cause_counters():
    m = RequestMetrics()
    m.observe(request(), "llama", slow_phases=["ttft", "e2e"], top_cause="runqueue_wait", slow=True)
    m.observe(request(), "llama", slow_phases=["ttft"], top_cause=None, slow=True)
    s = by_name(m.samples())
    slow = {x.labels["phase"]: x.value for x in s["infernode_request_slow_total"]}
    assert slow == {"ttft": 2.0, "e2e": 1.0}
    causes = {x.labels["kind"]: x.value for x in s["infernode_request_causes_total"]}
    assert causes == {"runqueue_wait": 1.0, "none": 1.0}


def test_openmetrics_exposition_carries_trace_ids():
    cat = Catalog()
    cat.add("tracing", REQUEST_SPECS)
    m = RequestMetrics()
    r = request(ttft=0.2)
    m.observe(r, "llama")
    text, ctype = render(m.samples(), cat, openmetrics=True)
    assert ctype.startswith("application/openmetrics-text")
    line = next(ln for ln in text.decode().splitlines()
                if ln.startswith('infernode_request_ttft_seconds_bucket{le="0.25"'))
    assert f'# {{trace_id="{r.trace_id}"}} 0.2' in line
    plain, _ = render(m.samples(), cat, openmetrics=False)
    assert b"trace_id" not in plain
