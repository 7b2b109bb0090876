"""The daemon's subsystem lifecycle, in process: a shutdown that one subsystem
cannot finish still ends within the budget and names it; a stop during start-up
ends the start-up; a reload starts the subsystems the new config turns on and
stops the ones it turns off, in the order the daemon is handed them. Subsystems are the
doubles of tests/doubles/subsystems.py; the server, collectors and config are real."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml

from agent.config import load_config
from agent.daemon import SHUTDOWN_BUDGET_S, STOP_RESERVE_S, Daemon
from agent.paths import Paths
from tests.doubles import subsystems as doubles
from tests.harness.agent import only_collectors

ABANDONED = re.compile(r"(?P<what>.+) did not stop within (?P<had>[0-9.]+) s; abandoning it")


@pytest.fixture
def classes():
    """Choose the subsystem classes the daemon is handed; every double's calls go
    to one list."""
    calls: list[str] = []
    released: list[threading.Event] = []

    def use(*cls_list):
        for cls in cls_list:
            cls.calls = calls
            if cls in (doubles.Stuck, doubles.StuckStarting):
                cls.release = threading.Event()
                released.append(cls.release)
        use.chosen = cls_list
        return calls

    doubles.FailsToStart.attempts = 0
    yield use
    for ev in released:
        ev.set()


def write_config(path, otlp: bool) -> None:
    path.write_text(yaml.safe_dump({
        "server": {"listen": "127.0.0.1:0"},
        "collectors": only_collectors("loadavg"),
        "otlp": {"enabled": otlp},
    }))


def make_daemon(tmp_path, classes, otlp: bool = False) -> Daemon:
    path = tmp_path / "infernode.yaml"
    write_config(path, otlp)
    return Daemon(load_config(path), path, Paths(), classes.chosen)


async def until_ready(d: Daemon, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while d._runner is None:  # noqa: SLF001 - readiness, as /readyz reports it
        assert time.monotonic() < deadline, "daemon not ready"
        await asyncio.sleep(0.01)


def get(d: Daemon, path: str) -> tuple[int, bytes]:
    assert d.listening is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{d.listening[1]}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def fetch(d: Daemon, path: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(get, d, path)


def test_a_subsystem_that_never_stops_is_abandoned_by_name_within_the_budget(tmp_path, classes, caplog):
    calls = classes(doubles.First, doubles.Stuck)
    d = make_daemon(tmp_path, classes)

    async def scenario() -> tuple[int, float]:
        task = asyncio.create_task(d.run())
        await until_ready(d)
        t0 = time.monotonic()
        d.stop()
        rc = await task
        return rc, time.monotonic() - t0

    caplog.set_level(logging.INFO, logger="infernode")
    t0 = time.monotonic()
    rc, stopping = asyncio.run(scenario())
    # asyncio.run returned too: nothing waits for the stuck thread at the loop's end.
    whole = time.monotonic() - t0
    assert rc == 0
    assert stopping < SHUTDOWN_BUDGET_S + 0.3, f"shutdown took {stopping:.2f}s"
    abandoned = [m for r in caplog.records if (m := ABANDONED.fullmatch(r.getMessage()))]
    assert [m["what"] for m in abandoned] == ["subsystem stuck"]
    # It had the budget less a reserve for each of the three parts after it.
    assert SHUTDOWN_BUDGET_S - 3 * STOP_RESERVE_S - 0.2 <= float(abandoned[0]["had"]) <= SHUTDOWN_BUDGET_S - 3 * STOP_RESERVE_S
    # The shutdown went on: the subsystem stopped after it still stopped.
    assert calls == ["first.start", "stuck.start", "stuck.stop", "first.stop"]
    assert whole < SHUTDOWN_BUDGET_S + 3.0


def test_a_stop_during_start_up_ends_it(tmp_path, classes, caplog):
    calls = classes(doubles.First, doubles.StuckStarting, doubles.Last)
    d = make_daemon(tmp_path, classes)

    async def scenario() -> tuple[int, float]:
        task = asyncio.create_task(d.run())
        while "stuck_starting.start" not in calls:
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        d.stop()
        rc = await task
        return rc, time.monotonic() - t0

    caplog.set_level(logging.INFO, logger="infernode")
    rc, stopping = asyncio.run(scenario())
    assert rc == 0
    assert stopping < 1.0, f"took {stopping:.2f}s"
    assert d.listening is None  # never served
    assert any(r.getMessage() == "stop requested while starting" for r in caplog.records)
    # Every subsystem is stopped, the one not yet started too (its stop must cope).
    assert calls == ["first.start", "stuck_starting.start", "last.stop", "stuck_starting.stop", "first.stop"]


def test_reload_starts_and_stops_subsystems_as_the_config_turns_them_on_and_off(tmp_path, classes):
    calls = classes(doubles.First, doubles.Toggled, doubles.Last)
    d = make_daemon(tmp_path, classes, otlp=False)

    async def scenario() -> None:
        task = asyncio.create_task(d.run())
        await until_ready(d)
        assert [s.name for s in d.subsystems] == ["first", "last"]
        status, body = await fetch(d, "/toggled")
        assert status == 503 and b"toggled is off" in body
        assert d.telemetry.runtime.scrape() and not any(
            s.name == "infernode_otlp_forward_queue_spans" for s in d.telemetry.runtime.scrape())

        write_config(d.config_path, otlp=True)
        assert await d.reload() is True
        # Started in its place in the order, between the two that kept running.
        assert [s.name for s in d.subsystems] == ["first", "toggled", "last"]
        assert calls[-3:] == ["first.reload", "toggled.start", "last.reload"]
        assert await fetch(d, "/toggled") == (200, b'{"on": true}')
        assert [s.value for s in d.telemetry.runtime.scrape() if s.name == "infernode_otlp_forward_queue_spans"] == [7.0]

        write_config(d.config_path, otlp=False)
        assert await d.reload() is True
        assert [s.name for s in d.subsystems] == ["first", "last"]
        assert calls[-3:] == ["toggled.turn_off", "first.reload", "last.reload"]
        assert (await fetch(d, "/toggled"))[0] == 503
        assert not any(s.name == "infernode_otlp_forward_queue_spans" for s in d.telemetry.runtime.scrape())
        assert d.telemetry.selfmetrics.reload_failures == 0
        d.stop()
        assert await task == 0

    asyncio.run(scenario())


def test_what_a_subsystem_published_is_withdrawn_when_a_reload_turns_it_off(tmp_path, classes):
    classes(doubles.First, doubles.Publishes)
    d = make_daemon(tmp_path, classes, otlp=True)

    async def scenario() -> None:
        task = asyncio.create_task(d.run())
        await until_ready(d)
        assert d.services.worker_model_of is not None and d.services.worker_model_of("w") == "m"
        write_config(d.config_path, otlp=False)
        assert await d.reload() is True
        assert [s.name for s in d.subsystems] == ["first"]
        assert d.services.worker_model_of is None
        assert d.services.published() == []
        write_config(d.config_path, otlp=True)
        assert await d.reload() is True
        assert d.services.worker_model_of is not None
        d.stop()
        assert await task == 0

    asyncio.run(scenario())


def test_a_subsystem_that_fails_to_start_on_reload_is_counted_and_the_config_stays(tmp_path, classes, caplog):
    classes(doubles.First, doubles.FailsToStart)
    d = make_daemon(tmp_path, classes, otlp=False)

    async def scenario() -> None:
        task = asyncio.create_task(d.run())
        await until_ready(d)
        path = d.config_path
        cfg = yaml.safe_load(path.read_text())
        cfg["otlp"]["enabled"] = True
        cfg["collectors"]["loadavg"]["enabled"] = False
        path.write_text(yaml.safe_dump(cfg))
        assert await d.reload() is False
        assert d.telemetry.selfmetrics.reload_failures == 1
        assert d.telemetry.selfmetrics.last_reload_ok is False
        # Not undone: the new config, with its collectors, is the running one.
        assert d.config.otlp.enabled is True
        assert [c.name for c in d.telemetry.runtime.collectors] == []
        assert [s.name for s in d.subsystems] == ["first"]
        assert (await fetch(d, "/toggled"))[0] == 503

        # The next reload tries the start again.
        assert await d.reload() is False
        assert doubles.FailsToStart.attempts == 2
        assert d.telemetry.selfmetrics.reload_failures == 2

        # A reload whose config turns it off again succeeds.
        cfg["otlp"]["enabled"] = False
        path.write_text(yaml.safe_dump(cfg))
        assert await d.reload() is True
        assert d.telemetry.selfmetrics.last_reload_ok is True
        d.stop()
        assert await task == 0

    caplog.set_level(logging.INFO, logger="infernode")
    asyncio.run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0].startswith("config reload incomplete: subsystem fails did not start (OSError: cannot bind its port)")
