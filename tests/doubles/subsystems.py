"""Subsystem TEST DOUBLES for the daemon's lifecycle: they implement
agent.subsystem.Subsystem exactly and do nothing else.

No real subsystem hangs in stop() or start() once its blocking work is off the
event loop, so the daemon's safety net (a part that overruns the shutdown budget
is abandoned by name) is exercised with these: `Stuck` waits in stop() for a
thread that never ends, as a join of a wedged thread would; `StuckStarting` never
finishes start(). `Recorder` notes every call, so a test sees what was stopped,
started and reloaded, and in which order. `Toggled` is on when `otlp.enabled` is,
as the tracing subsystem is. A test hands them to an in-process Daemon in place
of agent.plugins.subsystem_classes().
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from aiohttp import web

from agent.runtime import off_loop
from agent.samples import Sample
from agent.subsystem import Subsystem, off_response


class Recorder(Subsystem):
    name = "recorder"
    calls: ClassVar[list[str]]  # shared by every instance of one class: set per test

    def _note(self, what: str) -> None:
        type(self).calls.append(f"{self.name}.{what}")

    async def start(self) -> None:
        self._note("start")

    async def stop(self) -> None:
        self._note("stop")

    async def turn_off(self, config: Any) -> None:
        self._note("turn_off")

    async def reload(self, config: Any) -> None:
        self._note("reload")


class First(Recorder):
    name = "first"


class Last(Recorder):
    name = "last"


class Toggled(Recorder):
    """On while otlp.enabled is true; serves GET /toggled and one sample (an
    infernode_otlp_* name, so the catalog has it)."""

    name = "toggled"

    @classmethod
    def enabled(cls, config: Any) -> bool:
        return bool(config.otlp.enabled)

    @classmethod
    def add_routes(cls, app: web.Application, live: Callable[[], Any]) -> None:
        async def toggled(_: web.Request) -> web.Response:
            if live() is None:
                return off_response("toggled is off")
            return web.json_response({"on": True})

        app.router.add_get("/toggled", toggled)

    def samples(self) -> Iterable[Sample]:
        yield Sample("infernode_otlp_forward_queue_spans", {}, 7.0)


class FailsToStart(Toggled):
    name = "fails"
    attempts: ClassVar[int] = 0

    async def start(self) -> None:
        type(self).attempts += 1
        self._note("start")
        raise OSError("cannot bind its port")


class Stuck(Recorder):
    """stop() waits, off the loop as a real subsystem must, for a thread that never
    ends; `release` lets the thread go when the test is over."""

    name = "stuck"
    release: ClassVar[threading.Event]

    async def stop(self) -> None:
        self._note("stop")
        await off_loop(type(self).release.wait)


class StuckStarting(Recorder):
    name = "stuck_starting"
    release: ClassVar[threading.Event]

    async def start(self) -> None:
        self._note("start")
        await off_loop(type(self).release.wait)


class Publishes(Toggled):
    """Publishes a provider (the worker supervisor's model lookup) when it starts,
    as the worker supervisor does, and never takes it back itself: the daemon must."""

    name = "publishes"

    async def start(self) -> None:
        self._note("start")
        self.ctx.services.worker_model_of = self.model_of

    def model_of(self, worker: str) -> str | None:
        return "m"
