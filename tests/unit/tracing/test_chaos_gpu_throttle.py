"""Chaos scenario (3), issue 8: a thermal throttle window on the GPU (the NVML test
double's `thermal_throttle` timeline, driven in real time through the GPU collector's
public constructor) is named for the requests that overlapped it, by the time they
overlapped, including one that ended while the window was still open; requests
before and after it have no cause."""

import time

import pytest

from agent.paths import Paths
from agent.tracing.metrics import RequestMetrics
from agent.tracing.pipeline import Enricher
from agent.tracing.recent import RecentRequests
from agent.tracing.scope import ScopeResolver
from agent.tracing.settings import ExplainSettings
from tests.unit.gpu.helpers import make_collector

from .spanfactory import export


def _ingest(enricher: Enricher, start_ns: int, end_ns: int):
    e2e = (end_ns - start_ns) / 1e9
    req = export(1, pid=None, start_ns=start_ns, ttft=e2e / 4, e2e=e2e)
    enricher.process(req)
    trace_id = req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    (ex,) = enricher.recent.by_trace(trace_id)
    return ex


def _gpu_causes(ex) -> dict[str, float]:
    return {c.kind: c.explained_s for c in ex.causes if c.kind.startswith("gpu_")}


def test_thermal_throttle_window_is_named_for_the_requests_inside_it():
    c, fake, store = make_collector("thermal_throttle")
    c.start()
    assert c.wait_first_poll(5)
    enricher = Enricher(store, ExplainSettings(), ScopeResolver(Paths(), [], c.ctx.services), RequestMetrics(),
                        RecentRequests(100), c.ctx.services)
    uuid = fake.scenario["devices"][0]["uuid"]
    try:
        t0 = time.time_ns()
        time.sleep(0.15)
        before_end = time.time_ns()
        time.sleep(0.05)
        fake.advance()  # HW thermal slowdown on, SM clock 1980 -> 1215 MHz
        c.refresh()
        time.sleep(0.2)
        # Ends inside the window: the collector has not written it yet (it is open).
        open_req = _ingest(enricher, t0 + 100_000_000, time.time_ns())
        time.sleep(0.2)
        fake.advance()  # throttle off
        c.refresh()
        time.sleep(0.05)
        after_start = time.time_ns()
        time.sleep(0.15)
        after_end = time.time_ns()
    finally:
        c.stop()
    (window,) = store.query(0, 2**62, subjects=[f"gpu:{uuid}"], kinds=["gpu_throttle"])
    assert before_end < window.start_ns < window.end_ns < after_start

    assert _ingest(enricher, t0, before_end).verdict == "no known cause"
    assert _ingest(enricher, after_start, after_end).verdict == "no known cause"

    # Half before the window, the whole window, a little after.
    span_start = window.start_ns - 100_000_000
    during = _ingest(enricher, span_start, window.end_ns + 20_000_000)
    got = _gpu_causes(during)
    assert got["gpu_throttle"] == pytest.approx(window.duration_s, abs=1e-6)
    (thr,) = [x for x in during.causes if x.kind == "gpu_throttle"]
    assert thr.detail == {"gpu": uuid, "reason": "hw_thermal_slowdown"}
    assert "GPU throttled" in thr.text and "(hw_thermal_slowdown)" in thr.text
    assert during.causes[0].kind in ("gpu_throttle", "gpu_clock_drop")

    # The open window counted up to the request's end.
    (othr,) = [x for x in open_req.causes if x.kind == "gpu_throttle"]
    r = open_req.request
    assert 0 < othr.explained_s <= (r.start_ns + int(r.e2e * 1e9) - window.start_ns) / 1e9 + 1e-6
    assert othr.explained_s == pytest.approx((r.start_ns + int(r.e2e * 1e9) - window.start_ns) / 1e9, abs=0.01)
