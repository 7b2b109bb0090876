"""Runs collectors for a scrape: timeouts, isolation, validation, self-metrics.

Each collector runs in its own worker thread. A collector that raises reports
up=0; one that overruns its timeout reports up=0 and is not started again until
its stuck run returns (so a hung source cannot pile up threads); samples that do
not match the catalog are dropped and counted. The scrape answers within the
largest collector timeout whatever the collectors do.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from agent.catalog import Catalog, MetricSpec, MetricType
from agent.collector import Collector, NoDataError
from agent.samples import HistogramValue, Sample

log = logging.getLogger("infernode.runtime")

RUNTIME_SPECS = (
    MetricSpec(
        "infernode_collector_up",
        MetricType.GAUGE,
        "Whether the collector's last run succeeded (1) or failed, timed out or found no data (0).",
        labels=("collector",),
        source="agent runtime",
    ),
    MetricSpec(
        "infernode_collector_duration_seconds",
        MetricType.GAUGE,
        "Wall time of the collector's last run.",
        unit="seconds",
        labels=("collector",),
        source="agent runtime",
    ),
    MetricSpec(
        "infernode_collector_dropped_samples_total",
        MetricType.COUNTER,
        "Samples a collector produced that did not match the metric catalog and were dropped.",
        labels=("collector",),
        source="agent runtime",
    ),
)


@dataclass
class CollectorStatus:
    name: str
    up: bool = False
    state: str = "never run"  # ok | no data | error | timeout | never run
    reason: str = ""
    fix: str = ""
    duration_s: float = 0.0
    last_ok_unix: float | None = None
    dropped_total: int = 0


class CollectorRuntime:
    def __init__(
        self,
        collectors: Sequence[Collector],
        catalog: Catalog,
        timeouts: dict[str, float],
        default_timeout: float = 5.0,
        extra: Sequence[Callable[[], Iterable[Sample]]] = (),
    ) -> None:
        # Samples the agent produces itself (build, process, event store), cheap and
        # in-process: not run through the thread pool.
        self.extra = list(extra)
        self.collectors = list(collectors)
        self.catalog = catalog
        self.timeouts = timeouts
        self.default_timeout = default_timeout
        self.status = {c.name: CollectorStatus(c.name) for c in self.collectors}
        # One thread per collector plus slack for runs stuck past their timeout.
        self._pool = ThreadPoolExecutor(
            max_workers=max(4, 2 * len(self.collectors)), thread_name_prefix="collector"
        )
        self._inflight: dict[str, Future[list[Sample]]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        for c in self.collectors:
            try:
                c.start()
            except NoDataError as e:
                self._set(c.name, False, "no data", e.reason, e.fix)
            except Exception as e:  # a collector must never take the daemon down
                log.exception("collector %s failed to start", c.name)
                self._set(c.name, False, "error", f"start failed: {e}")

    def stop(self) -> None:
        for c in self.collectors:
            try:
                c.stop()
            except Exception:
                log.exception("collector %s failed to stop", c.name)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def timeout_for(self, name: str) -> float:
        return self.timeouts.get(name, self.default_timeout)

    def scrape(self) -> list[Sample]:
        started: dict[str, tuple[Future[list[Sample]], float]] = {}
        with self._lock:
            for c in self.collectors:
                prev = self._inflight.get(c.name)
                if prev is not None and not prev.done():
                    self._set(c.name, False, "timeout", "previous run still has not returned")
                    continue
                fut = self._pool.submit(self._run_one, c)
                self._inflight[c.name] = fut
                started[c.name] = (fut, time.monotonic())
        deadline = time.monotonic() + max((self.timeout_for(n) for n in started), default=0)
        out: list[Sample] = []
        for name, (fut, t0) in started.items():
            remaining = min(deadline, t0 + self.timeout_for(name)) - time.monotonic()
            wait_futures([fut], timeout=max(0.0, remaining))
            if not fut.done():
                self._set(name, False, "timeout", f"no answer within {self.timeout_for(name):g}s")
                self.status[name].duration_s = time.monotonic() - t0
                continue
            out.extend(fut.result())
        out.extend(self._self_samples())
        for fn in self.extra:
            out.extend(fn())
        return out

    def _run_one(self, c: Collector) -> list[Sample]:
        t0 = time.monotonic()
        try:
            raw = list(c.collect())
        except NoDataError as e:
            self._finish(c.name, t0, False, "no data", e.reason, e.fix)
            return self._validate(c.name, e.samples)[0]
        except Exception as e:
            log.warning("collector %s failed: %s", c.name, e, exc_info=log.isEnabledFor(logging.DEBUG))
            self._finish(c.name, t0, False, "error", f"{type(e).__name__}: {e}")
            return []
        good, dropped = self._validate(c.name, raw)
        self._finish(c.name, t0, True, "ok", "")
        if dropped:
            self.status[c.name].dropped_total += dropped
        return good

    def _finish(self, name: str, t0: float, up: bool, state: str, reason: str, fix: str = "") -> None:
        self._set(name, up, state, reason, fix)
        st = self.status[name]
        st.duration_s = time.monotonic() - t0
        if up:
            st.last_ok_unix = time.time()

    def _set(self, name: str, up: bool, state: str, reason: str, fix: str = "") -> None:
        st = self.status[name]
        if st.state != state or st.reason != reason:
            if not up and state != "no data":
                log.warning("collector %s is %s: %s", name, state, reason)
        st.up, st.state, st.reason, st.fix = up, state, reason, fix

    def _validate(self, collector: str, raw: Iterable[object]) -> tuple[list[Sample], int]:
        good: list[Sample] = []
        dropped = 0
        for s in raw:
            problem = self._problem(s)
            if problem is None:
                good.append(s)  # type: ignore[arg-type]
            else:
                dropped += 1
                if dropped == 1:
                    log.warning("collector %s: dropping invalid sample: %s", collector, problem)
        return good, dropped

    def _problem(self, s: object) -> str | None:
        if not isinstance(s, Sample):
            return f"not a Sample: {type(s).__name__}"
        spec = self.catalog.get(s.name)
        if spec is None:
            if self.catalog.passthrough_for(s.name):
                return _check_value(s, None)
            return f"{s.name} is not in the metric catalog"
        if set(s.labels) != set(spec.labels):
            return f"{s.name}: labels {sorted(s.labels)} != declared {sorted(spec.labels)}"
        if not all(isinstance(v, str) for v in s.labels.values()):
            return f"{s.name}: label values must be strings"
        return _check_value(s, spec)

    def _self_samples(self) -> list[Sample]:
        out = []
        for st in self.status.values():
            labels = {"collector": st.name}
            out.append(Sample("infernode_collector_up", labels, 1.0 if st.up else 0.0))
            out.append(Sample("infernode_collector_duration_seconds", labels, st.duration_s))
            out.append(Sample("infernode_collector_dropped_samples_total", labels, float(st.dropped_total)))
        return out


def _check_value(s: Sample, spec: MetricSpec | None) -> str | None:
    if spec is not None and spec.type is MetricType.HISTOGRAM:
        if not isinstance(s.value, HistogramValue):
            return f"{s.name}: histogram needs a HistogramValue"
        bounds = [b for b, _ in s.value.buckets]
        counts = [c for _, c in s.value.buckets]
        if not bounds or bounds[-1] != math.inf:
            return f"{s.name}: last bucket must be +Inf"
        if bounds != sorted(bounds) or counts != sorted(counts):
            return f"{s.name}: buckets must be increasing and cumulative"
        return None
    if isinstance(s.value, HistogramValue):
        return None if spec is None else f"{s.name}: {spec.type.value} got a histogram"
    if isinstance(s.value, bool) or not isinstance(s.value, (int, float)):
        return f"{s.name}: value {s.value!r} is not a number"
    if spec is not None and spec.type is MetricType.COUNTER and s.value < 0:
        return f"{s.name}: counter is negative"
    return None
