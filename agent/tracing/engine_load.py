"""Each worker's recent load, from its own spans: which requests were queued,
prefilling and decoding when, with their token counts, and what the worker does
unloaded. The engine causes (agent/tracing/engine_causes.py) read it.

vLLM exports a span when its request finishes, batched about 5 s late
(BatchSpanProcessor defaults), so the requests that overlapped one may arrive after
it. The timeline is therefore asked again each time an explanation is worked out
(`infernode explain` re-explains against what has arrived since), and a request
teaches the unloaded baseline only once it has settled: `settle` after it ended,
when its neighbours have arrived too.

Bounded per worker by `horizon` (requests that ended longer ago than that before
the newest are forgotten), in all by `requests`; at most MAX_WORKERS workers.
"""

from __future__ import annotations

import bisect
import statistics
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.tracing.ranking import bounds
from agent.tracing.spans import RequestSpan

MAX_WORKERS = 256
# Unloaded TPOT: the median of this many recent requests that decoded alone.
BASELINE_SAMPLES = 256
# Typical prompt: the median prompt of this many recent requests.
PROMPT_SAMPLES = 512
# A request decoded "alone" when, on average, at most this many others were in the
# batch beside it and no other request's prefill overlapped more than this share of its decode.
ALONE_BATCH = 1.0
ALONE_PREFILL_SHARE = 0.05
# With a model's baseline full, one settled request in this many is looked at.
FULL_SAMPLING = 16
# A worker's medians and quantiles are worked out again after this many requests.
RECOMPUTE = 64
# The most neighbours one question looks at (a request overlapping more is on a
# worker so loaded that a sample of them tells the same story).
MAX_NEIGHBOURS = 5000


@dataclass(frozen=True, slots=True)
class Run:
    """One finished request on the realtime clock (ns): queued, first scheduled,
    first token, last token, end; its TPOT (None under two tokens)."""

    key: int
    queued: int
    scheduled: int
    first: int
    last: int
    end: int
    prompt_tokens: int
    completion_tokens: int
    model: str
    tpot: float | None

    @classmethod
    def of(cls, r: RequestSpan) -> Run:
        _, queued, scheduled, first, last, end = bounds(r)
        n = r.completion_tokens
        tpot = (last - first) / 1e9 / (n - 1) if n >= 2 and last > first else None
        return cls(hash((r.trace_id, r.span_id)), queued, scheduled, first, last, end, r.prompt_tokens, n,
                   r.model_name, tpot)


def overlap(s1: int, e1: int, s2: int, e2: int) -> int:
    return max(0, min(e1, e2) - max(s1, s2))


@dataclass(frozen=True)
class Baseline:
    """What a worker does, for one model: the median TPOT of requests that decoded
    alone (None until `min_samples` have), its typical prompt, and the fastest tenth
    of its recent TPOTs, loaded or not (a request no slower than that cannot have
    fallen behind its batch)."""

    tpot_s: float | None
    tpot_samples: int
    typical_prompt: int | None
    fast_tpot_s: float | None = None


class LoadView:
    """One request's neighbours on its worker (every other request whose time on
    the engine overlapped its own), looked up when first asked for, and the
    worker's baseline."""

    def __init__(self, baseline: Baseline, lookup: Callable[[], tuple[list[Run], bool]]) -> None:
        self.baseline = baseline
        self._lookup = lookup
        self._neighbours: tuple[Run, ...] | None = None

    @property
    def neighbours(self) -> tuple[Run, ...]:
        if self._neighbours is None:
            found, _truncated = self._lookup()  # past MAX_NEIGHBOURS: a sample
            self._neighbours = tuple(found)
        return self._neighbours


class _WorkerLoad:
    def __init__(self) -> None:
        self.runs: list[Run] = []  # in end order
        self.ends: list[int] = []
        self.keys: set[int] = set()
        # The longest request kept (queued to end): nothing ending later than this
        # after a request's end can have started before it.
        self.longest = 0
        self.pending: deque[Run] = deque()  # not yet settled, in arrival order
        self.tpot: dict[str, deque[float]] = {}
        self.prompts: deque[int] = deque(maxlen=PROMPT_SAMPLES)
        self.recent_tpot: dict[str, deque[float]] = {}
        self.skipped = 0
        self.crowded = 0  # settled requests in a row that did not decode alone
        # Medians and quantiles worked out again every RECOMPUTE additions, not per question.
        self.added = 0
        self.cache: dict[str, Baseline] = {}


class LoadTimeline:
    """`requests` bounds all workers together; beyond it the busiest worker's oldest go."""

    def __init__(self, horizon_s: float = 60.0, requests: int = 50_000, settle_s: float = 10.0,
                 min_samples: int = 20) -> None:
        self.horizon_ns = int(horizon_s * 1e9)
        self.max_runs = requests
        self.settle_ns = int(settle_s * 1e9)
        self.min_samples = min_samples
        self._workers: dict[str, _WorkerLoad] = {}
        self._lock = threading.Lock()
        self._total = 0
        self.dropped = 0  # requests not kept: a worker beyond MAX_WORKERS

    def add(self, worker: str, r: RequestSpan) -> Run | None:
        """Keep one finished request; None when it is already kept (a re-sent span)
        or its worker is one too many."""
        run = Run.of(r)
        with self._lock:
            w = self._workers.get(worker)
            if w is None:
                if len(self._workers) >= MAX_WORKERS:
                    self.dropped += 1
                    return None
                w = self._workers[worker] = _WorkerLoad()
            if run.key in w.keys:
                return None
            i = bisect.bisect_right(w.ends, run.end)
            w.runs.insert(i, run)
            w.ends.insert(i, run.end)
            w.keys.add(run.key)
            w.longest = max(w.longest, run.end - run.queued)
            w.pending.append(run)
            w.prompts.append(run.prompt_tokens)
            if run.tpot is not None:
                w.recent_tpot.setdefault(run.model, deque(maxlen=PROMPT_SAMPLES)).append(run.tpot)
            w.added += 1
            if w.added % RECOMPUTE == 0:
                w.cache.clear()
            self._total += 1
            self._settle(w)
            self._cut(w, bisect.bisect_left(w.ends, w.ends[-1] - self.horizon_ns))
            while self._total > self.max_runs:
                busiest = max(self._workers.values(), key=lambda x: len(x.runs))
                self._cut(busiest, max(1, len(busiest.runs) // 100))
        return run

    def _cut(self, w: _WorkerLoad, n: int) -> None:
        """Forget a worker's `n` oldest requests (by end)."""
        if n <= 0:
            return
        for run in w.runs[:n]:
            w.keys.discard(run.key)
        del w.runs[:n]
        del w.ends[:n]
        self._total -= n

    def _settle(self, w: _WorkerLoad) -> None:
        """Requests whose neighbours have all arrived teach the baseline: a TPOT of
        one that decoded alone. Once a model's baseline is full, or while the worker
        is too busy for anyone to decode alone, one in FULL_SAMPLING is looked at
        (each look scans the request's neighbours)."""
        newest = w.ends[-1]
        while w.pending and w.pending[0].end < newest - self.settle_ns:
            run = w.pending.popleft()
            tpot = run.tpot
            if tpot is None or run.key not in w.keys:
                continue
            samples = w.tpot.get(run.model)
            if samples is None:
                samples = w.tpot[run.model] = deque(maxlen=BASELINE_SAMPLES)
            # A full baseline, or a worker so loaded that its last FULL_SAMPLING
            # requests all had company: one in FULL_SAMPLING is looked at.
            if len(samples) == BASELINE_SAMPLES or w.crowded >= FULL_SAMPLING:
                w.skipped += 1
                if w.skipped % FULL_SAMPLING:
                    continue
            if _decoded_alone(w, run):
                w.crowded = 0
                samples.append(tpot)
                w.cache.pop(run.model, None)
            else:
                w.crowded += 1

    def view(self, worker: str, run: Run) -> LoadView | None:
        with self._lock:
            w = self._workers.get(worker)
            if w is None:
                return None
            base = w.cache.get(run.model)
            if base is None:
                base = w.cache[run.model] = self._baseline(w, run.model)

        def lookup() -> tuple[list[Run], bool]:
            with self._lock:
                return _overlapping(w, run)

        return LoadView(base, lookup)

    def _baseline(self, w: _WorkerLoad, model: str) -> Baseline:
        tpots = w.tpot.get(model, ())
        n = len(tpots)
        recent = sorted(w.recent_tpot.get(model, ()))
        return Baseline(statistics.median(tpots) if n >= self.min_samples else None, n,
                        int(statistics.median(w.prompts)) if len(w.prompts) >= self.min_samples else None,
                        recent[len(recent) // 10] if len(recent) >= self.min_samples else None)

    def others_at(self, worker: str, run: Run, t: int) -> int:
        """The worker's other requests that may own a segment it sent at `t`: those
        on the engine then, and, after `run` ended, those that ended after it and
        before `t` (their responses' last bytes are nearer)."""
        with self._lock:
            w = self._workers.get(worker)
            if w is None:
                return 0
            n = 0
            for i in range(bisect.bisect_left(w.ends, min(t, run.end)), len(w.ends)):
                x = w.runs[i]
                if x.end > t + w.longest:
                    break
                if x.key == run.key:
                    continue
                if x.queued <= t <= x.end or run.end < x.end < t:
                    n += 1
            return n

    def size(self) -> int:
        with self._lock:
            return sum(len(w.runs) for w in self._workers.values())


def _ending_after(w: _WorkerLoad, start: int, end: int) -> range:
    """Indexes of the kept requests that may overlap [start, end]: those ending after
    `start`, and no later than the longest request after `end`."""
    lo = bisect.bisect_right(w.ends, start)
    return range(lo, bisect.bisect_right(w.ends, end + w.longest, lo))


def _overlapping(w: _WorkerLoad, run: Run) -> tuple[list[Run], bool]:
    """The other kept requests on the engine during any of [run.queued, run.end]."""
    out: list[Run] = []
    for i in _ending_after(w, run.queued, run.end):
        x = w.runs[i]
        if x.key != run.key and x.queued < run.end:
            out.append(x)
            if len(out) >= MAX_NEIGHBOURS:
                return out, True
    return out, False


def _decoded_alone(w: _WorkerLoad, run: Run) -> bool:
    """Whether others were in the batch beside the run's decode for at most
    ALONE_BATCH of it on average, and prefilled for at most ALONE_PREFILL_SHARE.
    Stops at the first neighbour too many: on a loaded worker that is the second."""
    d0, d1 = run.first, run.last
    d = d1 - d0
    if d <= 0:
        return False
    batch_max, prefill_max = ALONE_BATCH * d, ALONE_PREFILL_SHARE * d
    batch = prefill = 0
    for i in _ending_after(w, d0, d1):
        x = w.runs[i]
        if x.key == run.key or x.scheduled >= d1:
            continue
        batch += max(0, min(x.last, d1) - max(x.scheduled, d0))
        prefill += max(0, min(x.first, d1) - max(x.scheduled, d0))
        if batch > batch_max or prefill > prefill_max:
            return False
    return True
