"""Long-running parts of the daemon that are not collectors: the worker
supervisor, the OTLP receiver, the tuning loop, the bootstrap monitor.

A subsystem starts and stops with the daemon, or with a reload whose config turns
it on or off (`enabled`), may add HTTP routes, may expose samples (declared in
`specs`, so they are in the catalog like any collector's) and rows for
`infernode doctor`.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, Self, TypeVar

from aiohttp import web

from agent.catalog import MetricSpec, PassthroughSpec
from agent.doctor_row import DoctorRow
from agent.events import EventStore
from agent.paths import Paths
from agent.samples import Sample
from agent.services import Services

# The part of the config a subsystem reads: a Protocol its plugin declares (e.g.
# tuning.settings.TuningConfig). Contravariant, so that the composition root's
# Config, which has every section, type-checks as each subsystem's view.
C = TypeVar("C", contravariant=True)


@dataclass(frozen=True)
class SubsystemContext(Generic[C]):
    """What a subsystem is given: the same for every subsystem, made anew (with the
    config then applied) each time the daemon starts one."""

    paths: Paths
    events: EventStore
    services: Services
    config: C
    config_path: Path | None = None


class Subsystem(ABC, Generic[C]):
    name: ClassVar[str]
    specs: ClassVar[tuple[MetricSpec | PassthroughSpec, ...]] = ()

    def __init__(self, ctx: SubsystemContext[C]) -> None:
        self.ctx = ctx

    @classmethod
    def enabled(cls, config: C) -> bool:
        """Whether `config` wants this subsystem; asked at start and on every reload."""
        return True

    async def start(self) -> None:
        """Begin work; must return promptly (spawn tasks for loops). Blocking
        calls go off the event loop (agent.runtime.off_loop)."""

    async def stop(self) -> None:
        """The daemon is stopping. Awaited with what is left of the shutdown budget
        (agent.daemon.SHUTDOWN_BUDGET_S, shared by all subsystems) and abandoned
        when that runs out, so nothing here may block the event loop."""

    async def turn_off(self, config: C) -> None:
        """A reload's new `config` disables this subsystem: end its work. The same
        as stop() unless the subsystem leaves work running on purpose when the
        daemon stops, which a config that removes it should end."""
        await self.stop()

    async def reload(self, config: C) -> None:
        """A new, valid config was loaded, and it still enables this subsystem."""

    @classmethod
    def add_routes(cls, app: web.Application, live: Callable[[], Self | None]) -> None:
        """Add HTTP routes to the agent's server. Called for every subsystem class
        when the server is built, whether the config enables the subsystem or not:
        an aiohttp app takes no routes once it serves, and a reload may turn the
        subsystem on or off. Handlers get the running instance from live(), None
        while the subsystem is off, and then answer 503 (`off_response`)."""

    def samples(self) -> Iterable[Sample]:
        return ()

    def doctor(self) -> Iterable[DoctorRow]:
        return ()

    @classmethod
    def doctor_offline(cls, config: C, paths: Paths) -> list[DoctorRow]:
        """Rows for `infernode doctor`, which runs without the daemon: what can be
        checked from the config and the host (or asked of the running agent)."""
        return []


def off_response(why: str) -> web.Response:
    """A subsystem route's answer while the config has the subsystem off."""
    return web.json_response({"error": why}, status=503)

