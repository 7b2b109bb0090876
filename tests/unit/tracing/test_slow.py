import pytest

from agent.tracing.settings import SloSettings
from agent.tracing.slow import SlowJudge, quantile


def test_quantile_nearest_rank():
    vals = [float(i) for i in range(1, 101)]
    assert quantile(vals, 0.99) == 99.0
    assert quantile(vals, 0.5) == 50.0
    assert quantile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_slo_breach_is_slow():
    j = SlowJudge(SloSettings(ttft=0.3))
    assert j.judge("w", {"ttft": 0.2}) == []
    (s,) = j.judge("w", {"ttft": 0.35})
    assert s == {"phase": "ttft", "seconds": 0.35, "threshold_seconds": 0.3, "basis": "slo"}


def test_rolling_p99_needs_enough_requests_then_flags_outliers():
    j = SlowJudge(SloSettings(), window=200, min_requests=100)
    for i in range(99):
        assert j.judge("w", {"e2e": 1.0 + (i % 10) / 100}) == []
    assert j.p99("w", "e2e") is None
    j.judge("w", {"e2e": 1.0})
    assert j.p99("w", "e2e") == pytest.approx(1.09)
    (s,) = j.judge("w", {"e2e": 3.0})
    assert s["basis"] == "p99" and s["threshold_seconds"] == pytest.approx(1.09)
    assert j.judge("w", {"e2e": 1.05}) == []


def test_p99_is_per_worker():
    j = SlowJudge(SloSettings(), window=100, min_requests=10)
    for _ in range(20):
        j.judge("fast", {"ttft": 0.1})
        j.judge("slow", {"ttft": 2.0})
    assert j.judge("fast", {"ttft": 1.0})[0]["phase"] == "ttft"
    assert j.judge("slow", {"ttft": 1.0}) == []


def test_missing_phase_is_not_judged():
    j = SlowJudge(SloSettings(tpot=0.01))
    assert j.judge("w", {"ttft": 0.1}) == []


def test_the_window_forgets_its_oldest_and_the_p99_follows_at_once():
    j = SlowJudge(SloSettings(), window=100, min_requests=100)
    for _ in range(100):
        j.judge("w", {"e2e": 5.0})
    assert j.p99("w", "e2e") == 5.0
    for _ in range(99):
        j.judge("w", {"e2e": 1.0})
    assert j.p99("w", "e2e") == 1.0  # one 5.0 left of 100: the nearest-rank p99 is 1.0
    j.judge("w", {"e2e": 1.0})
    assert j.judge("w", {"e2e": 1.5})[0]["threshold_seconds"] == 1.0


def test_a_reload_changes_the_objectives_from_the_next_request():
    j = SlowJudge(SloSettings(ttft=1.0))
    assert j.judge("w", {"ttft": 0.5}) == []
    j.slo = SloSettings(ttft=0.3)
    assert j.judge("w", {"ttft": 0.5})[0]["threshold_seconds"] == 0.3
