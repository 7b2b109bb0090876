"""The cost ledger over a scripted timeline: a worker starts, serves, idles, drains,
stops, restarts and loses a GPU; GPU-seconds, idle seconds, energy, tokens and cost
come out exact."""

from __future__ import annotations

import pytest

from agent.cost.ledger import Ledger
from agent.cost.prices import PriceBook
from agent.cost.settings import CostSettings
from agent.usage import GpuUsage, TokenTotals, WorkerHolding

H100 = "NVIDIA H100 80GB HBM3"
WALL0 = 1_800_000_000.0  # a minute boundary


def hold(active: bool, in_flight: float | None, gpus=(0, 1), worker="w0") -> WorkerHolding:
    return WorkerHolding(worker, "llama-70b", gpus, active, in_flight)


def gpus(util: float | None, energy0: float | None, energy1: float | None) -> dict[int, GpuUsage]:
    return {0: GpuUsage(H100, util, energy0), 1: GpuUsage(H100, util, energy1)}


def ledger(**prices) -> Ledger:
    settings = CostSettings(**prices)
    return Ledger(PriceBook(settings), settings.history, WALL0)


# (t, holding, usage, tokens): each row's state is what the agent sees at t.
TIMELINE = [
    (0, hold(False, None), gpus(0.0, 1000.0, 2000.0), {}),
    (10, hold(True, None), gpus(0.0, 1000.0, 2000.0), {}),                   # unit starting, no scrape yet
    (20, hold(True, 0), gpus(0.5, 4000.0, 5000.0), {}),                       # loading: held, idle unknown
    (30, hold(True, 2), gpus(0.9, 9000.0, 10000.0),
     {"w0": TokenTotals(100, 50, 3)}),                                        # serving
    (40, hold(True, 0), gpus(0.8, 14000.0, 15000.0), {"w0": TokenTotals(100, 50, 3)}),  # 2 in flight at 30
    (50, hold(True, 0), gpus(0.0, 15000.0, 16000.0), {"w0": TokenTotals(100, 50, 3)}),  # idle 40-50
    (60, hold(False, 0), gpus(0.0, 15500.0, 16500.0), {"w0": TokenTotals(100, 50, 3)}),  # drained 50-60, idle
    (70, hold(True, None), gpus(0.0, 15600.0, 16600.0), {"w0": TokenTotals(100, 50, 3)}),  # restarted
    (80, hold(True, None), {1: GpuUsage(H100, 0.5, 17600.0)},
     {"w0": TokenTotals(130, 80, 4)}),                                        # GPU 0 lost
]


def run(led: Ledger, rows=TIMELINE) -> None:
    for t, h, u, tok in rows:
        led.advance(float(t), WALL0 + t, [h], u, tok)


def test_gpu_seconds_idle_busy_energy_tokens_and_cost_are_exact() -> None:
    led = ledger(gpu_hour_price={H100: 3.6}, default_gpu_hour_price=1.8, energy_kwh_price=0.36)
    run(led)
    t = led.books["w0"].totals
    # Held 10-20, 20-30, 30-40, 40-50, 50-60 (draining) and 70-80, two GPUs each.
    assert t.gpu_seconds == pytest.approx(6 * 10 * 2)
    # Idle: 40-50 and 50-60 (nothing in flight at either end, nothing finished).
    assert t.idle_seconds == pytest.approx(2 * 10 * 2)
    # Busy: utilization read at the end of each held interval, per GPU; GPU 0 lost at 80.
    assert t.busy_seconds == pytest.approx(10 * 2 * (0.5 + 0.9 + 0.8 + 0.0 + 0.0) + 10 * 0.5)
    # Energy: each GPU's counter rise over the held intervals (10-60: 14500 J + 14500 J;
    # 70-80: GPU 1 only, 1000 J; GPU 0 lost, nothing).
    assert t.energy_joules == pytest.approx(14500 + 14500 + 1000)
    assert (t.prompt_tokens, t.completion_tokens, t.requests) == (130, 80, 4)
    # GPU cost: H100 GPU-seconds at 3.6/h (0.001/s); GPU 0 at 80 reports no model, priced
    # at the default 1.8/h. Energy at 0.36/kWh = 1e-7 per joule.
    assert t.cost_gpu == pytest.approx(110 * 0.001 + 10 * 0.0005)
    assert t.cost_energy == pytest.approx(30000 * 1e-7)
    assert t.cost_per_million_tokens() == pytest.approx((0.115 + 0.003) / 210 * 1e6)
    assert led.held == {0: "w0", 1: "w0"}
    assert led.prices.defaulted == {"unknown"}


def test_no_price_books_time_but_no_cost_and_unpriced_models_are_named() -> None:
    led = ledger()
    run(led)
    t = led.books["w0"].totals
    assert t.gpu_seconds == pytest.approx(120) and t.cost == 0 and t.cost_per_million_tokens() is None
    assert led.prices.unpriced == {H100, "unknown"}


def test_a_counter_that_goes_back_books_no_energy_and_a_pipeline_restart_books_its_new_tokens() -> None:
    led = ledger(energy_kwh_price=0.36)
    rows = [
        (0, hold(True, 1), gpus(0.5, 5000.0, 5000.0), {"w0": TokenTotals(10, 10, 1)}),
        (10, hold(True, 1), gpus(0.5, 100.0, 6000.0), {"w0": TokenTotals(3, 4, 1)}),  # driver reload; restart
    ]
    run(led, rows)
    t = led.books["w0"].totals
    assert t.energy_joules == pytest.approx(1000.0), "GPU 0's counter went back: nothing booked for it"
    assert (t.prompt_tokens, t.completion_tokens, t.requests) == (13, 14, 2)


def test_two_workers_split_the_node_and_an_unheld_gpu_shows() -> None:
    led = ledger(default_gpu_hour_price=2.0)
    u = {i: GpuUsage(H100, 0.5, None) for i in range(4)}
    for t in (0, 30):
        led.advance(float(t), WALL0 + t, [hold(True, 1, (0,), "a"), hold(True, 0, (1, 2), "b")], u, {})
    assert led.books["a"].totals.gpu_seconds == 30 and led.books["b"].totals.gpu_seconds == 60
    assert led.books["b"].totals.idle_seconds == 60 and led.books["a"].totals.idle_seconds == 0
    assert led.held == {0: "a", 1: "b", 2: "b"}, "GPU 3 is held by nobody"


def test_window_counts_whole_minute_buckets_and_history_is_bounded() -> None:
    led = ledger(default_gpu_hour_price=3.6, history=120)
    u = gpus(1.0, None, None)
    for t in range(0, 301, 30):  # 5 minutes of one worker on two GPUs
        led.advance(float(t), WALL0 + t, [hold(True, 1)], u, {})
    now = WALL0 + 300
    # Booked at each interval's end: bucket 4:00 holds the intervals ending at 4:00 and 4:30,
    # bucket 5:00 the one ending at 5:00; a window of 60 s from 5:00 takes both buckets whole.
    assert led.window(60, now)["w0"].gpu_seconds == pytest.approx(3 * 30 * 2)
    assert led.window(3600, now)["w0"].gpu_seconds < led.books["w0"].totals.gpu_seconds, "history is 2 min"
    assert led.covered_seconds(now) == 120


def test_systemd_times_bound_the_time_held_within_a_booking_interval() -> None:
    led = ledger(default_gpu_hour_price=3.6)
    rows = [
        (0, WorkerHolding("w0", "m", (0,), False, None, None, None)),
        (10, WorkerHolding("w0", "m", (0,), True, None, 3.5, None)),    # unit left inactive at 3.5
        (20, WorkerHolding("w0", "m", (0,), True, 0, 3.5, None)),
        (30, WorkerHolding("w0", "m", (0,), False, 0, 3.5, 22.0)),       # and entered it again at 22
        (40, WorkerHolding("w0", "m", (0,), False, None, 3.5, 22.0)),
    ]
    for t, h in rows:
        led.advance(float(t), WALL0 + t, [h], {0: GpuUsage(H100, 1.0, None)}, {})
    t = led.books["w0"].totals
    assert t.gpu_seconds == pytest.approx(22.0 - 3.5)
    assert t.busy_seconds == pytest.approx(22.0 - 3.5)
    assert t.cost_gpu == pytest.approx((22.0 - 3.5) * 0.001)


def test_a_restart_between_two_bookings_is_not_held_while_the_unit_was_down() -> None:
    led = ledger(default_gpu_hour_price=3.6)
    rows = [
        (0, WorkerHolding("w0", "m", (0,), True, 0, -100.0, None)),
        (10, WorkerHolding("w0", "m", (0,), True, 0, 6.0, 4.0)),  # down from 4 to 6
        (20, WorkerHolding("w0", "m", (0,), True, 0, 6.0, 4.0)),
    ]
    for t, h in rows:
        led.advance(float(t), WALL0 + t, [h], {0: GpuUsage(H100, 0.0, None)}, {})
    assert led.books["w0"].totals.gpu_seconds == pytest.approx(4.0 + 4.0 + 10.0)
