"""Runs collectors for a scrape: timeouts, isolation, validation, self-metrics.

Collectors run in daemon threads (see scrape()). A collector that raises reports
up=0; one that overruns its timeout reports up=0 and is not started again until
its stuck run returns (so a hung source cannot pile up threads); samples that do
not match the catalog are dropped and counted. The scrape answers within the
largest collector timeout whatever the collectors do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.catalog import Catalog, MetricSpec, MetricType
from agent.collector import Collector, NoDataError
from agent.samples import HistogramValue, Sample
from agent.specs import COLLECTOR_DROPPED_SAMPLES_TOTAL, COLLECTOR_DURATION_SECONDS, COLLECTOR_UP

log = logging.getLogger("infernode.runtime")

T = TypeVar("T")


@dataclass
class CollectorStatus:
    name: str
    up: bool = False
    state: str = "never run"  # ok | no data | error | timeout | never run
    reason: str = ""
    fix: str = ""
    duration_s: float = 0.0
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
        # name -> (run, its start on the monotonic clock); a run is shared by
        # concurrent scrapes and outlives a scrape that gave up on it.
        self._inflight: dict[str, _Run] = {}
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
        # Runs still stuck in a collector are abandoned, not joined: their threads
        # are daemon threads, so they cannot hold up the process's exit.
        for c in self.collectors:
            try:
                c.stop()
            except Exception:
                log.exception("collector %s failed to stop", c.name)
            # Whatever it published is taken back, stopped cleanly or not.
            c.ctx.services.withdraw(c)

    def timeout_for(self, name: str) -> float:
        return self.timeouts.get(name, self.default_timeout)

    def scrape(self) -> list[Sample]:
        """Run every collector once; safe to call from several threads at once.

        Collectors run one after another in a single daemon thread: most read a
        few files in well under a millisecond, and one thread costs half the CPU
        of one thread per collector (thread start-up, GIL hand-offs) and waits
        for a core once, not once per collector. When a collector overruns its
        timeout, the ones queued behind it are started at once in threads of
        their own, so a hung source delays the scrape by its own timeout only.
        A scrape that finds a collector's run in flight (another scrape started
        it) waits for that run instead of starting a second one."""
        to_wait: list[_Run] = []
        with self._lock:
            now = time.monotonic()
            fresh: list[_Run] = []
            for c in self.collectors:
                prev = self._inflight.get(c.name)
                if prev is not None and not prev.future.done():
                    if prev.started is not None and now - prev.started >= self.timeout_for(c.name):
                        self._set(c.name, False, "timeout", "previous run still has not returned")
                    else:
                        to_wait.append(prev)
                    continue
                run = _Run(c)
                self._inflight[c.name] = run
                fresh.append(run)
                to_wait.append(run)
        if fresh:
            _Chain(fresh, self._run_one).start()
        out: list[Sample] = []
        for run in to_wait:
            name = run.collector.name
            timeout = self.timeout_for(name)
            # The timeout counts from the run's start; a run still queued behind
            # another scrape's chain counts from when this scrape began waiting.
            t_wait = time.monotonic()
            while not run.future.done():
                started = run.started if run.started is not None else t_wait
                remaining = started + timeout - time.monotonic()
                if remaining <= 0:
                    break
                wait_futures([run.future], timeout=remaining)
            if not run.future.done():
                self._set(name, False, "timeout", f"no answer within {timeout:g}s")
                self.status[name].duration_s = time.monotonic() - started
                for rest in run.chain.abandon():
                    _Chain([rest], self._run_one).start()
                continue
            out.extend(run.future.result())
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
            out.append(COLLECTOR_UP.emit(labels, 1.0 if st.up else 0.0))
            out.append(COLLECTOR_DURATION_SECONDS.emit(labels, st.duration_s))
            out.append(COLLECTOR_DROPPED_SAMPLES_TOTAL.emit(labels, float(st.dropped_total)))
        return out


class _Run:
    """One collector run: its result, when it started, the chain running it."""

    __slots__ = ("collector", "future", "started", "chain")

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.future: Future[list[Sample]] = Future()
        self.future.set_running_or_notify_cancel()
        self.started: float | None = None
        self.chain: _Chain


class _Chain:
    """Runs collector runs in order in one daemon thread. A scrape that gives up
    on the current run abandons the chain: it gets back the runs not yet
    started (to run elsewhere) and the thread ends once the stuck run returns."""

    def __init__(self, runs: list[_Run], run_one: Callable[[Collector], list[Sample]]) -> None:
        self._runs = deque(runs)
        self._run_one = run_one
        self._lock = threading.Lock()
        for r in runs:
            r.chain = self

    def start(self) -> None:
        in_daemon_thread(self._loop)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._runs:
                    return
                run = self._runs.popleft()
                run.started = time.monotonic()
            try:
                run.future.set_result(self._run_one(run.collector))
            except BaseException as e:  # noqa: BLE001 - handed to the waiting scrape
                run.future.set_exception(e)

    def abandon(self) -> list[_Run]:
        with self._lock:
            rest = list(self._runs)
            self._runs.clear()
        return rest


class DaemonThreads:
    """A thread pool whose threads are daemon threads. ThreadPoolExecutor's
    workers are joined at interpreter exit, so one collector stuck in a read()
    would keep the agent from ever exiting; these are not. A job never waits for
    a free thread: with none idle, a new one starts, so a stuck collector holds
    its thread and delays nothing else. Threads are reused (starting one costs
    more than a typical collector run) and end after IDLE_S without work."""

    IDLE_S = 60.0

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for work that no submitted job has claimed

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        fut: Future[T] = Future()
        fut.set_running_or_notify_cancel()
        with self._lock:
            if self._idle:
                self._idle -= 1
                spawn = False
            else:
                spawn = True
        self._jobs.put((fut, fn, args))
        if spawn:
            threading.Thread(target=self._work, name="infernode-worker", daemon=True).start()
        return fut

    def _work(self) -> None:
        while True:
            try:
                fut, fn, args = self._jobs.get(timeout=self.IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # an unclaimed idle thread may go; a claimed one stays for its job
                        self._idle -= 1
                        return
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                fut.set_exception(e)
            del fut, fn, args
            with self._lock:
                self._idle += 1


class SerialDaemonThread:
    """One daemon thread that runs its jobs one at a time, in order: for work that
    must not run concurrently with itself (the span pipeline). A daemon thread, as
    DaemonThreads' are, so a job stuck at shutdown cannot hold up the exit; close()
    cancels what has not started and lets the thread end."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        fut: Future[T] = Future()
        if self._closed:
            fut.cancel()
            return fut
        self._jobs.put((fut, fn, args))
        return fut

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fut, fn, args = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                fut.set_exception(e)
            del fut, fn, args, job


_threads: DaemonThreads | None = None
_threads_lock = threading.Lock()


def in_daemon_thread(fn: Callable[..., T], *args: object) -> Future[T]:
    """Run fn(*args) in one of the process's daemon threads (created on first use)."""
    global _threads
    if _threads is None:
        with _threads_lock:
            if _threads is None:
                _threads = DaemonThreads()
    return _threads.submit(fn, *args)


async def off_loop(fn: Callable[..., T], *args: object) -> T:
    """Await fn(*args) run in a daemon thread. Like asyncio.to_thread, except that a
    call that never returns (a read of a wedged file, a hung subprocess) cannot
    hold up the process's exit: asyncio.run and the interpreter both wait for the
    default executor's threads, never for these."""
    return await asyncio.wrap_future(in_daemon_thread(fn, *args))


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait until it has unwound (its finally blocks have run)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
