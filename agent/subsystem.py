"""Long-running parts of the daemon that are not collectors: the worker
supervisor, the OTLP receiver, the tuning loop, the bootstrap monitor.

A subsystem starts and stops with the daemon, may add HTTP routes, may expose
samples (declared in `specs`, so they are in the catalog like any collector's) and
rows for `infernode doctor`.
"""

from __future__ import annotations

from abc import ABC
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

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
        return True

    async def start(self) -> None:
        """Begin work; must return promptly (spawn tasks for loops)."""

    async def stop(self) -> None:
        """Finish within the daemon's 5 s shutdown budget."""

    async def reload(self, config: Any) -> None:
        """A new, valid config was loaded."""

    def add_routes(self, app: web.Application) -> None:
        """Add HTTP routes to the agent's server."""

    def samples(self) -> Iterable[Sample]:
        return ()

    def doctor(self) -> Iterable[DoctorRow]:
        return ()


def subsystem_classes() -> list[type[Subsystem]]:
    """The daemon's subsystems, imported on demand."""
    from agent.bootstrap.subsystem import BootstrapSubsystem
    from agent.tracing.subsystem import TracingSubsystem
    from agent.worker.supervisor import WorkerSupervisor
    from tuning.subsystem import TuningSubsystem

    # Tuning before the worker: the worker reads the inference CPU set it publishes.
    return [
        BootstrapSubsystem,
        TuningSubsystem,
        WorkerSupervisor,
        TracingSubsystem,
    ]
