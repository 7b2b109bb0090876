"""Long-running parts of the daemon that are not collectors: the worker
supervisor, the OTLP receiver, the tuning loop, the bootstrap monitor.

A subsystem starts and stops with the daemon, or with a reload whose config turns
it on or off (`enabled`), may add HTTP routes, may expose samples (declared in
`specs`, so they are in the catalog like any collector's) and rows for
`infernode doctor`.
"""

from __future__ import annotations

from abc import ABC
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from aiohttp import web

from agent.catalog import MetricSpec, PassthroughSpec
from agent.collector import DoctorRow
from agent.samples import Sample

if TYPE_CHECKING:
    from agent.daemon import Daemon


class Subsystem(ABC):
    name: ClassVar[str]
    specs: ClassVar[tuple[MetricSpec | PassthroughSpec, ...]] = ()

    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon

    @classmethod
    def enabled(cls, config: Any) -> bool:
        """Whether `config` wants this subsystem; asked at start and on every reload."""
        return True

    async def start(self) -> None:
        """Begin work; must return promptly (spawn tasks for loops). Blocking
        calls go off the event loop (agent.runtime.off_loop)."""

    async def stop(self) -> None:
        """The daemon is stopping. Awaited with what is left of the shutdown budget
        (agent.daemon.SHUTDOWN_BUDGET_S, shared by all subsystems) and abandoned
        when that runs out, so nothing here may block the event loop."""

    async def turn_off(self, config: Any) -> None:
        """A reload's new `config` disables this subsystem: end its work. The same
        as stop() unless the subsystem leaves work running on purpose when the
        daemon stops, which a config that removes it should end."""
        await self.stop()

    async def reload(self, config: Any) -> None:
        """A new, valid config was loaded, and it still enables this subsystem."""

    @classmethod
    def add_routes(cls, app: web.Application, live: Callable[[], Any]) -> None:
        """Add HTTP routes to the agent's server. Called for every subsystem class
        when the server is built, whether the config enables the subsystem or not:
        an aiohttp app takes no routes once it serves, and a reload may turn the
        subsystem on or off. Handlers get the running instance from live(), None
        while the subsystem is off, and then answer 503 (`off_response`)."""

    def samples(self) -> Iterable[Sample]:
        return ()

    def doctor(self) -> Iterable[DoctorRow]:
        return ()


def off_response(why: str) -> web.Response:
    """A subsystem route's answer while the config has the subsystem off."""
    return web.json_response({"error": why}, status=503)

