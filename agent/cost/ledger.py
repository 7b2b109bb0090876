"""GPU time, energy, tokens and their cost, booked per worker (pure: the subsystem
feeds it readings and clocks).

Each `advance` books the interval since the previous one:

- GPU-seconds held: every GPU of a worker whose unit was active at the start of the
  interval (starting, serving or draining: a held GPU is paid for either way);
- busy: held seconds times the GPU's utilization read at the end of the interval
  (NVML's utilization describes the sample period just past);
- idle: held seconds in which the worker served nothing: no request in flight at
  either end (vLLM's running + waiting gauges) and none finished in between;
- energy: each GPU's energy counter's rise, booked to the worker that held it (a
  counter that went back, as after a driver reload, books nothing);
- cost: held seconds at the GPU model's hourly price, energy at the kWh price;
- tokens and requests: the rise of the span pipeline's totals per worker.

Totals are kept for the metrics, and one bucket a minute for `infernode cost --since`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

from agent.cost.prices import PriceBook
from agent.usage import GpuUsage, TokenTotals, WorkerHolding

BUCKET_SECONDS = 60.0
UNKNOWN_MODEL = "unknown"  # a GPU the GPU collector does not report (no NVML)


@dataclass
class Totals:
    gpu_seconds: float = 0.0
    busy_seconds: float = 0.0
    idle_seconds: float = 0.0
    energy_joules: float = 0.0
    cost_gpu: float = 0.0
    cost_energy: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

    def add(self, other: Totals) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def cost(self) -> float:
        return self.cost_gpu + self.cost_energy

    def cost_per_million_tokens(self) -> float | None:
        tokens = self.prompt_tokens + self.completion_tokens
        return self.cost / tokens * 1e6 if tokens and self.cost > 0 else None


@dataclass
class WorkerBook:
    model_name: str = ""
    totals: Totals = field(default_factory=Totals)
    buckets: deque[tuple[float, Totals]] = field(default_factory=deque)


def _held(before: WorkerHolding | None, after: WorkerHolding | None, t0: float, t1: float, floor: float) -> float:
    """Seconds the worker held its GPUs from t0 to t1. systemd's own times of leaving
    and entering "inactive" bound it where known; without them, the state at the
    start of the interval stands for all of it. A unit first seen active is held
    from its start (the supervisor sees a start up to a tick late), but never from
    before `floor`, the agent's start."""
    if after is not None and after.active:
        start = t0
        if before is None or not before.active:
            start = max(floor, after.since) if after.since is not None else t1
        elif after.since is not None and after.until is not None and t0 <= after.until <= after.since <= t1:
            # Restarted within the interval: not held between stop and start.
            return max(0.0, after.until - t0) + max(0.0, t1 - after.since)
        return max(0.0, t1 - start)
    if before is not None and before.active:
        # Released within the interval: until the unit went inactive.
        end = t1
        if after is not None and after.until is not None and after.until >= t0:
            end = min(t1, after.until)
        return max(0.0, end - t0)
    return 0.0


class Ledger:
    def __init__(self, prices: PriceBook, history_s: float, started_wall: float,
                 started_mono: float | None = None) -> None:
        self.prices = prices
        self.history_s = history_s
        self.started_wall = started_wall
        self.books: dict[str, WorkerBook] = {}
        self.held: dict[int, str] = {}  # GPU index -> worker holding it, as of the last advance
        # The first advance books from the agent's start (a worker it started since
        # then was held from the unit's start); without it, from the first advance.
        self._last_mono: float | None = started_mono
        self._floor: float | None = started_mono  # set at the first advance when not given
        self._holdings: list[WorkerHolding] = []
        self._energy: dict[int, float] = {}
        self._tokens: dict[str, TokenTotals] = {}

    def advance(self, mono: float, wall: float, holdings: Iterable[WorkerHolding],
                usage: Mapping[int, GpuUsage], tokens: Mapping[str, TokenTotals]) -> None:
        holdings = list(holdings)
        delta: dict[str, Totals] = {}
        for worker, now in tokens.items():
            seen = self._tokens.get(worker)
            if seen is None or now.requests < seen.requests or now.prompt < seen.prompt \
                    or now.completion < seen.completion:
                # The pipeline's totals start at 0 with it: all of them are new (also
                # after it restarted, when they went back).
                seen = TokenTotals(0, 0, 0)
            t = delta.setdefault(worker, Totals())
            t.prompt_tokens += max(0, now.prompt - seen.prompt)
            t.completion_tokens += max(0, now.completion - seen.completion)
            t.requests += max(0, now.requests - seen.requests)
        current = {h.worker: h for h in holdings}
        previous = {h.worker: h for h in self._holdings}
        t0 = self._last_mono if self._last_mono is not None else mono  # the first advance books no time
        if self._floor is None:
            self._floor = t0
        floor = self._floor
        for worker in sorted({*current, *previous}):
            held = _held(previous.get(worker), current.get(worker), t0, mono, floor)
            if held <= 0:
                continue
            h = current.get(worker) or previous[worker]
            before, after = previous.get(worker), current.get(worker)
            t = delta.setdefault(worker, Totals())
            n = len(h.gpus)
            t.gpu_seconds += held * n
            flights = [x.in_flight for x in (before, after) if x is not None]
            served = any((f or 0) > 0 for f in flights) or t.requests > 0  # requests finished in between
            if flights and all(f is not None for f in flights) and not served:
                t.idle_seconds += held * n
            for gpu in h.gpus:
                u = usage.get(gpu)
                if u is not None and u.utilization is not None:
                    t.busy_seconds += held * min(1.0, max(0.0, u.utilization))
                price = self.prices.gpu_hour(u.model_name if u is not None else UNKNOWN_MODEL)
                if price is not None:
                    t.cost_gpu += held / 3600.0 * price
                e0, e1 = self._energy.get(gpu), u.energy_joules if u is not None else None
                if e0 is not None and e1 is not None and e1 >= e0:
                    # The counter's rise over the whole interval, in the share of it held.
                    e = (e1 - e0) * min(1.0, held / (mono - t0)) if mono > t0 else 0.0
                    t.energy_joules += e
                    if self.prices.kwh is not None:
                        t.cost_energy += e / 3.6e6 * self.prices.kwh
        for worker, t in delta.items():
            self._book(worker, current.get(worker), t, wall)
        self._energy = {gpu: u.energy_joules for gpu, u in usage.items() if u.energy_joules is not None}
        self._tokens = dict(tokens)
        self._holdings = holdings
        self.held = {gpu: h.worker for h in holdings if h.active for gpu in h.gpus}
        self._last_mono = mono

    def _book(self, worker: str, holding: WorkerHolding | None, t: Totals, wall: float) -> None:
        book = self.books.get(worker)
        if book is None:
            book = self.books[worker] = WorkerBook()
        if holding is not None and holding.model_name:
            book.model_name = holding.model_name
        book.totals.add(t)
        start = math.floor(wall / BUCKET_SECONDS) * BUCKET_SECONDS
        if book.buckets and book.buckets[-1][0] == start:
            book.buckets[-1][1].add(t)
        else:
            book.buckets.append((start, t))
        while book.buckets and book.buckets[0][0] < wall - self.history_s - BUCKET_SECONDS:
            book.buckets.popleft()

    def window(self, since_s: float, wall: float) -> dict[str, Totals]:
        """Each worker's totals over the buckets that start within the last `since_s`
        (to the minute: a bucket is counted whole)."""
        cut = math.floor((wall - since_s) / BUCKET_SECONDS) * BUCKET_SECONDS
        out: dict[str, Totals] = {}
        for worker, book in self.books.items():
            t = Totals()
            for start, b in book.buckets:
                if start >= cut:
                    t.add(b)
            out[worker] = t
        return out

    def covered_seconds(self, wall: float) -> float:
        """How far back the ledger can answer: since the agent started, up to its history."""
        return min(wall - self.started_wall, self.history_s)
