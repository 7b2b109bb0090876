"""The collector runtime, in-process with collectors defined here, on real threads:
a collector that raises, hangs or returns garbage never breaks the scrape."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.catalog import MetricSpec, MetricType
from agent.collector import Collector, CollectorContext, CollectorSettings, NoDataError
from agent.events import EventStore
from agent.exposition import render
from agent.paths import Paths
from agent.plugins import build_catalog
from agent.runtime import CollectorRuntime
from agent.samples import Sample
from tests.harness.agent import value
from tests.harness.prometheus import available, promtool_check_metrics

pytestmark = pytest.mark.integration

SPEC = MetricSpec("infernode_test_answer", MetricType.GAUGE, "A value a test collector reports.",
                  labels=("who",), source="test collector")


class Good(Collector):
    name = "good"
    specs = (SPEC,)

    def collect(self):
        yield Sample(SPEC.name, {"who": self.name}, 42.0)


class Raises(Collector):
    name = "raises"
    specs = (SPEC,)

    def collect(self):
        yield Sample(SPEC.name, {"who": self.name}, 1.0)
        raise OSError("device went away")


class Hangs(Collector):
    name = "hangs"
    specs = (SPEC,)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.release = threading.Event()
        self.calls = 0

    def collect(self):
        self.calls += 1
        self.release.wait(60)
        yield Sample(SPEC.name, {"who": self.name}, 7.0)


class Garbage(Collector):
    name = "garbage"
    specs = (SPEC,)

    def collect(self):
        yield Sample(SPEC.name, {"who": self.name}, 3.0)
        yield "not a sample"
        yield Sample("infernode_test_undeclared", {}, 1.0)
        yield Sample(SPEC.name, {"whom": "x"}, 1.0)
        yield Sample(SPEC.name, {"who": "nan-string"}, "12")


class Absent(Collector):
    name = "absent"
    specs = (SPEC,)

    def collect(self):
        raise NoDataError("no such device here", "install the device")


TIMEOUT = 0.5


@pytest.fixture
def runtime():
    catalog = build_catalog()
    catalog.add("test", (SPEC,))
    ctx = CollectorContext(paths=Paths("/"), events=EventStore(), settings=CollectorSettings())
    collectors = [cls(ctx) for cls in (Good, Raises, Hangs, Garbage, Absent)]
    rt = CollectorRuntime(collectors, catalog, {c.name: TIMEOUT for c in collectors})
    rt.start()
    yield rt
    collectors[2].release.set()
    rt.stop()


def scrape_text(rt):
    body, _ = render(rt.scrape(), rt.catalog)
    return body.decode()


def test_each_failure_mode_is_isolated(runtime):
    t0 = time.monotonic()
    text = scrape_text(runtime)
    elapsed = time.monotonic() - t0
    assert elapsed < TIMEOUT + 0.5, f"scrape took {elapsed:.2f}s with {TIMEOUT}s timeouts"

    up = {c: value(text, "infernode_collector_up", collector=c) for c in ("good", "raises", "hangs", "garbage", "absent")}
    assert up == {"good": 1.0, "raises": 0.0, "hangs": 0.0, "garbage": 1.0, "absent": 0.0}
    assert value(text, "infernode_test_answer", who="good") == 42.0
    # A run that raised half-way contributes nothing (no partial data).
    assert value(text, "infernode_test_answer", who="raises") is None
    assert value(text, "infernode_test_answer", who="garbage") == 3.0
    assert value(text, "infernode_collector_dropped_samples_total", collector="garbage") == 4.0
    assert "infernode_test_undeclared" not in text
    assert value(text, "infernode_collector_duration_seconds", collector="hangs") >= TIMEOUT

    st = runtime.status
    assert st["raises"].state == "error" and "OSError: device went away" in st["raises"].reason
    assert st["hangs"].state == "timeout"
    assert st["absent"].state == "no data" and st["absent"].fix == "install the device"


def test_a_hung_collector_is_not_started_again_until_it_returns(runtime):
    hangs = next(c for c in runtime.collectors if c.name == "hangs")
    for _ in range(3):
        scrape_text(runtime)
    assert hangs.calls == 1
    assert "previous run still has not returned" in runtime.status["hangs"].reason

    hangs.release.set()
    deadline = time.monotonic() + 5
    while runtime.status["hangs"].state == "timeout" and time.monotonic() < deadline:
        time.sleep(0.02)
    # The event stays set, so the next run answers at once.
    text = scrape_text(runtime)
    assert hangs.calls == 2
    assert value(text, "infernode_collector_up", collector="hangs") == 1.0
    assert value(text, "infernode_test_answer", who="hangs") == 7.0


def test_concurrent_scrapes_share_runs_and_answer_in_budget(runtime):
    hangs = next(c for c in runtime.collectors if c.name == "hangs")
    t0 = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(lambda _: scrape_text(runtime), range(6)))
    elapsed = time.monotonic() - t0
    assert elapsed < TIMEOUT + 1.0, f"6 concurrent scrapes took {elapsed:.2f}s"
    assert hangs.calls == 1
    for text in texts:
        assert value(text, "infernode_collector_up", collector="good") == 1.0
        assert value(text, "infernode_collector_up", collector="hangs") == 0.0


@pytest.mark.skipif(not available(), reason="promtool not installed")
def test_exposition_with_failing_collectors_passes_promtool(runtime):
    rc, out = promtool_check_metrics(scrape_text(runtime).encode())
    assert rc == 0 and out.strip() == "", out
