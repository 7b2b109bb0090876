"""Aggregate windows (runqueue_pressure, io_pressure): time apportioned by overlap,
outlier waits inside them kept as evidence, never counted twice."""

import pytest

from agent.events import Event
from agent.tracing.correlate import explain

from .spanfactory import T0, request
from .test_correlate import CG, MS, SCOPE, rq


def window(start_ms: float, end_ms: float, wait_ms: float, cpu: int = 3, waits: int = 40) -> Event:
    return Event(T0 + int(start_ms * MS), T0 + int(end_ms * MS), "runqueue_pressure", f"cgroup:{CG}",
                 wait_ms / 1000, {"cpu": cpu, "waits": waits, "aggregate": True})


def test_window_explains_its_sum_scaled_by_the_overlapping_share():
    r = request(ttft=0.1, queue=0.0, prefill=0.09, decode=0.2, e2e=0.3)  # 0 .. 300 ms
    # inside: 30 ms; half inside (250..350): 20 ms of 40; outside: nothing
    ex = explain(r, SCOPE, [window(0, 100, 30), window(250, 350, 40), window(400, 500, 90)])
    (c,) = ex.causes
    assert c.kind == "runqueue_wait" and c.explained_s == pytest.approx(0.050)
    assert ex.explained_s == pytest.approx(0.050)
    assert c.detail["waits"] == 80 and c.detail["cpu"] == 3
    assert "run-queue wait 50.0 ms of 300 ms e2e on CPU 3, 80 waits" in c.text
    # per phase: first window lies in frontend+prefill (0..100 ms: prefill is 10..100)
    assert sum(c.phases.values()) == pytest.approx(0.050)
    assert c.phases["decode"] == pytest.approx(0.020)


def test_window_is_not_its_duration():
    # A 100 ms window holding 2 ms of waits explains 2 ms, not 100 ms.
    ex = explain(request(e2e=1.0, ttft=0.4, decode=0.6), SCOPE, [window(100, 200, 2)])
    assert ex.causes[0].explained_s == pytest.approx(0.002)


def test_outliers_inside_windows_are_evidence_not_counted_twice():
    r = request(e2e=1.0, ttft=0.4, decode=0.6)
    # The 20 ms outlier is one of the waits the window summed (35 ms in all).
    evs = [window(100, 200, 35), rq(150, 170, holder=4444, comm="hog")]
    ex = explain(r, SCOPE, evs)
    (c,) = ex.causes
    assert c.explained_s == pytest.approx(0.035)
    assert ex.explained_s == pytest.approx(0.035)
    assert c.detail["holder_pid"] == 4444 and c.detail["outliers"] == 1
    assert c.text.endswith("on CPU 3, CPU held by thread 4444 (hog), 40 waits")


def test_without_windows_outliers_still_explain_by_union():
    ex = explain(request(e2e=1.0, ttft=0.4, decode=0.6), SCOPE, [rq(100, 120), rq(110, 130)])
    assert ex.causes[0].explained_s == pytest.approx(0.030)


def test_parallel_waits_never_explain_more_than_the_overlap():
    # Three threads waited side by side: 300 ms of waits in a 100 ms window.
    r = request(e2e=1.0, ttft=0.4, decode=0.6)
    ex = explain(r, SCOPE, [window(0, 100, 300)])
    assert ex.causes[0].explained_s == pytest.approx(0.100)


def test_windows_per_cpu_are_separate_causes_and_total_is_bounded_by_e2e():
    r = request(e2e=0.2, ttft=0.1, queue=0.0, prefill=0.09, decode=0.1)
    ex = explain(r, SCOPE, [window(0, 200, 150, cpu=1), window(0, 200, 120, cpu=2),
                            rq(0, 50, cpu=5)])
    assert [c.detail["cpu"] for c in ex.causes] == [1, 2, 5]
    assert ex.explained_s == pytest.approx(0.2)


def test_small_windows_below_min_cause_are_not_named():
    ex = explain(request(e2e=1.0, ttft=0.4, decode=0.6), SCOPE, [window(0, 100, 0.5)], min_cause_s=0.001)
    assert ex.causes == [] and ex.verdict == "no known cause"


# --- block I/O windows (io_pressure) -------------------------------------------------

def io_window(start_ms: float, end_ms: float, wait_ms: float, device: str = "loop3", requests: int = 8,
              reads: int = 8) -> Event:
    return Event(T0 + int(start_ms * MS), T0 + int(end_ms * MS), "io_pressure", f"cgroup:{CG}", wait_ms / 1000,
                 {"device": device, "requests": requests, "reads": reads, "bytes": requests * 65536,
                  "aggregate": True})


def io_stall(start_ms: float, end_ms: float, device: str = "loop3", queued_ms: float = 0.0) -> Event:
    return Event(T0 + int(start_ms * MS), T0 + int(end_ms * MS), "io_stall", f"dev:{device}",
                 (end_ms - start_ms) / 1000, {"op": "read", "bytes": 65536, "issuer_pid": 4242, "cgroup": CG,
                                              "queued_seconds": queued_ms / 1000})


def test_io_windows_explain_an_io_stall_on_their_device():
    r = request(ttft=0.4, queue=0.0, prefill=0.39, decode=0.6, e2e=1.0)
    ex = explain(r, SCOPE, [io_window(0, 100, 60), io_window(100, 200, 30, requests=4, reads=3)])
    (c,) = ex.causes
    assert c.kind == "io_stall" and c.key == "dev:loop3"
    assert c.explained_s == pytest.approx(0.090) and ex.explained_s == pytest.approx(0.090)
    assert c.detail["device"] == "loop3" and c.detail["requests"] == 12
    assert c.detail["ops"] == ["read", "write/other"]
    assert c.text == "I/O stall 90.0 ms of 400 ms TTFT on loop3 (read/write/other), 12 requests"


def test_io_outliers_inside_windows_are_evidence_not_counted_twice():
    r = request(ttft=0.4, queue=0.0, prefill=0.39, decode=0.6, e2e=1.0)
    ex = explain(r, SCOPE, [io_window(0, 100, 70), io_stall(20, 80, queued_ms=55)])
    (c,) = ex.causes
    assert c.explained_s == pytest.approx(0.070)
    assert c.events == 2 and c.detail["slowest_seconds"] == pytest.approx(0.060)
    assert c.detail["slowest_queued_seconds"] == pytest.approx(0.055)


def test_io_and_runqueue_windows_are_separate_causes_per_device():
    r = request(ttft=0.4, queue=0.0, prefill=0.39, decode=0.6, e2e=1.0)
    ex = explain(r, SCOPE, [io_window(0, 100, 80), io_window(0, 100, 20, device="nvme0n1"), window(0, 100, 40)])
    assert [(c.kind, c.key) for c in ex.causes] == [("io_stall", "dev:loop3"), ("runqueue_wait", "3"),
                                                    ("io_stall", "dev:nvme0n1")]


def test_parallel_io_never_explains_more_than_the_overlap():
    # Readahead: eight 50 ms requests in flight together are 400 ms of summed waits in a 100 ms window.
    ex = explain(request(e2e=1.0, ttft=0.4, decode=0.6), SCOPE, [io_window(0, 100, 400)])
    assert ex.causes[0].explained_s == pytest.approx(0.100)


# --- reclaim_pressure: stalls under the outlier threshold -------------------------

def reclaim_window(start_ms: float, end_ms: float, stall_ms: float, kind: str = "memcg", stalls: int = 30,
                   cgroup: str = CG) -> Event:
    return Event(T0 + int(start_ms * MS), T0 + int(end_ms * MS), "reclaim_pressure", f"cgroup:{cgroup}",
                 stall_ms / 1000, {"kind": kind, "stalls": stalls, "cgroup": cgroup, "aggregate": True})


def test_reclaim_windows_explain_the_stalls_no_outlier_saw():
    # 60 stalls of under 10 ms each, 120 ms in all: no outlier event, still a cause.
    r = request(e2e=1.0, ttft=0.4, decode=0.6)
    ex = explain(r, SCOPE, [reclaim_window(100, 200, 60), reclaim_window(500, 600, 60)])
    (c,) = ex.causes
    assert c.kind == "reclaim_stall" and c.explained_s == pytest.approx(0.120)
    assert c.detail["reclaim"] == "memcg" and c.detail["stalls"] == 60 and c.detail["outliers"] == 0
    assert "(the cgroup's memory limit)" in c.text and c.text.endswith(f"cgroup {CG}, 60 stalls")


def test_a_reclaim_outlier_inside_a_window_is_its_evidence_and_kinds_stay_apart():
    r = request(e2e=1.0, ttft=0.4, decode=0.6)
    outlier = Event(T0 + 120 * MS, T0 + 150 * MS, "reclaim_stall", f"cgroup:{CG}", 0.030,
                    {"tid": 4242, "kind": "memcg", "comm": "python3", "cgroup": CG})
    evs = [reclaim_window(100, 200, 80), outlier, reclaim_window(300, 400, 70, kind="direct", stalls=5)]
    ex = explain(r, SCOPE, evs)
    by_kind = {c.detail["reclaim"]: c for c in ex.causes}
    assert by_kind["memcg"].explained_s == pytest.approx(0.080)  # the outlier's 30 ms is inside the 80
    assert by_kind["memcg"].detail["outliers"] == 1 and "in thread 4242 (python3)" in by_kind["memcg"].text
    assert by_kind["direct"].explained_s == pytest.approx(0.070)
    assert "(global direct reclaim)" in by_kind["direct"].text
