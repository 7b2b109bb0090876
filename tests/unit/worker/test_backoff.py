import pytest

from agent.worker.backoff import BackoffPolicy, BackoffState

P = BackoffPolicy(initial=5, factor=2, max=60, reset_after=600)


def test_exponential_then_capped():
    assert [P.delay(n) for n in range(1, 8)] == [5, 10, 20, 40, 60, 60, 60]


def test_huge_attempt_does_not_overflow():
    assert P.delay(10_000) == 60


def test_attempts_count_from_one():
    with pytest.raises(ValueError):
        P.delay(0)


def test_factor_one_is_constant():
    assert [BackoffPolicy(3, 1, 60, 10).delay(n) for n in (1, 5, 50)] == [3, 3, 3]


def test_streak_resets_only_after_a_long_healthy_stretch():
    s = BackoffState(P)
    assert [s.next_delay() for _ in range(3)] == [5, 10, 20]
    s.on_healthy(now=1000.0)
    s.on_healthy(now=1599.0)
    assert s.next_delay() == 40  # healthy 599 s: still the same streak
    s.on_healthy(now=2000.0)
    s.on_healthy(now=2600.0)
    assert s.attempts == 0
    assert s.next_delay() == 5


def test_unhealthy_interrupts_the_healthy_stretch():
    s = BackoffState(P)
    s.next_delay()
    s.on_healthy(now=0.0)
    s.on_unhealthy()
    s.on_healthy(now=500.0)
    s.on_healthy(now=700.0)  # only 200 s since it became healthy again
    assert s.attempts == 1
