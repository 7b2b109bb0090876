import threading
import time

import pytest

from agent.catalog import Catalog, MetricSpec, MetricType
from agent.collector import Collector, CollectorContext, CollectorSettings, NoDataError
from agent.events import EventStore
from agent.exposition import render
from agent.paths import Paths
from agent.runtime import CollectorRuntime
from agent.samples import Sample
from agent.specs import RUNTIME_SPECS

SPECS = (
    MetricSpec("infernode_test_value", MetricType.GAUGE, "A test value.", labels=("k",), source="test"),
    MetricSpec("infernode_test_events_total", MetricType.COUNTER, "A test counter.", source="test"),
)


def ctx() -> CollectorContext:
    return CollectorContext(paths=Paths("/nonexistent"), events=EventStore(1 << 20),
                            settings=CollectorSettings())


class Good(Collector):
    name = "good"
    specs = SPECS

    def collect(self):
        yield Sample("infernode_test_value", {"k": "a"}, 1.5)


class Raises(Collector):
    name = "raises"

    def collect(self):
        raise RuntimeError("device went away")


class NoData(Collector):
    name = "nodata"

    def collect(self):
        raise NoDataError("no GPU here", "install the driver")


class Hangs(Collector):
    name = "hangs"
    release = threading.Event()
    started = 0

    def collect(self):
        type(self).started += 1
        self.release.wait(10)
        return [Sample("infernode_test_value", {"k": "late"}, 1.0)]


class Garbage(Collector):
    name = "garbage"
    specs = SPECS

    def collect(self):
        yield Sample("infernode_test_value", {"k": "ok"}, 2.0)
        yield "not a sample"
        yield Sample("infernode_undeclared_thing", {}, 1.0)
        yield Sample("infernode_test_value", {"wrong": "x"}, 1.0)
        yield Sample("infernode_test_value", {"k": "nan-ish"}, "12")
        yield Sample("infernode_test_events_total", {}, -1.0)


class StartFails(Collector):
    name = "startfails"

    def start(self):
        raise OSError("cannot open ring buffer")

    def collect(self):
        return []


def runtime(*classes, timeouts=None, default=2.0) -> CollectorRuntime:
    catalog = Catalog()
    catalog.add("agent", RUNTIME_SPECS)
    catalog.add("test", SPECS)
    rt = CollectorRuntime([cls(ctx()) for cls in classes], catalog, timeouts or {}, default_timeout=default)
    rt.start()
    return rt


def up(samples, name):
    return next(s.value for s in samples if s.name == "infernode_collector_up" and s.labels["collector"] == name)


def test_a_collector_that_raises_is_down_and_the_others_still_report():
    rt = runtime(Good, Raises)
    try:
        samples = rt.scrape()
    finally:
        rt.stop()
    assert up(samples, "raises") == 0.0 and up(samples, "good") == 1.0
    assert rt.status["raises"].state == "error"
    assert "RuntimeError: device went away" in rt.status["raises"].reason
    assert any(s.name == "infernode_test_value" for s in samples)


def test_no_data_is_down_with_state_no_data_and_the_fix():
    rt = runtime(NoData)
    try:
        samples = rt.scrape()
    finally:
        rt.stop()
    assert up(samples, "nodata") == 0.0
    st = rt.status["nodata"]
    assert (st.state, st.reason, st.fix) == ("no data", "no GPU here", "install the driver")


def test_a_hung_collector_times_out_within_budget_and_is_not_started_twice():
    Hangs.release.clear()
    Hangs.started = 0
    rt = runtime(Good, Hangs, timeouts={"hangs": 0.3, "good": 0.3})
    try:
        t0 = time.monotonic()
        samples = rt.scrape()
        elapsed = time.monotonic() - t0
        assert elapsed < 0.3 + 0.5, f"scrape took {elapsed:.2f}s with a 0.3s budget"
        assert up(samples, "hangs") == 0.0 and up(samples, "good") == 1.0
        assert rt.status["hangs"].state == "timeout"
        assert not any(s.labels.get("k") == "late" for s in samples)
        t0 = time.monotonic()
        samples = rt.scrape()
        assert time.monotonic() - t0 < 0.3 + 0.5
        assert rt.status["hangs"].reason == "previous run still has not returned"
        assert Hangs.started == 1
    finally:
        Hangs.release.set()
        rt.stop()


def test_garbage_samples_are_dropped_and_counted_and_the_scrape_renders():
    rt = runtime(Garbage)
    try:
        samples = rt.scrape()
        samples2 = rt.scrape()
    finally:
        rt.stop()
    assert up(samples, "garbage") == 1.0
    values = [s for s in samples if s.name.startswith("infernode_test")]
    assert values == [Sample("infernode_test_value", {"k": "ok"}, 2.0)]
    dropped = [s.value for s in samples2 if s.name == "infernode_collector_dropped_samples_total"]
    assert dropped == [10.0]  # five per scrape, two scrapes
    body, _ = render(samples, rt.catalog)
    assert b'infernode_test_value{k="ok"} 2.0' in body


def test_a_collector_that_fails_to_start_is_reported_not_fatal():
    rt = runtime(StartFails, Good)
    try:
        assert rt.status["startfails"].state == "error"
        assert "cannot open ring buffer" in rt.status["startfails"].reason
        assert up(rt.scrape(), "good") == 1.0
    finally:
        rt.stop()


@pytest.mark.parametrize("cls", [Raises, NoData])
def test_duration_is_recorded_for_failed_runs(cls):
    rt = runtime(cls)
    try:
        samples = rt.scrape()
    finally:
        rt.stop()
    durations = [s for s in samples if s.name == "infernode_collector_duration_seconds"]
    assert len(durations) == 1 and 0 <= durations[0].value < 1


def test_serial_daemon_thread_runs_jobs_in_order_one_at_a_time_and_close_cancels_the_rest():
    import threading
    from concurrent.futures import CancelledError

    from agent.runtime import SerialDaemonThread

    worker = SerialDaemonThread("test-serial")
    assert worker._thread.daemon  # noqa: SLF001 - an exiting agent must not wait for it
    gate, started = threading.Event(), threading.Event()
    order: list[int] = []
    running = 0
    most = 0
    lock = threading.Lock()

    def job(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        if i == 0:
            started.set()
            gate.wait(5)
        order.append(i)
        with lock:
            running -= 1
        return i * 10

    futures = [worker.submit(job, i) for i in range(5)]
    late = worker.submit(job, 99)
    assert started.wait(5)
    worker.close()  # job 0 is running; 1-4 and 99 have not started
    gate.set()
    assert futures[0].result(5) == 0
    for f in [*futures[1:], late]:
        with pytest.raises(CancelledError):
            f.result(5)
    assert order == [0] and most == 1
    assert worker.submit(job, 7).cancelled()

    ok = SerialDaemonThread("test-serial-2")
    assert [f.result(5) for f in [ok.submit(job, i) for i in (1, 2, 3)]] == [10, 20, 30]
    assert order == [0, 1, 2, 3]
    ok.close()
