"""The composition root: the one module that names every concrete plugin.

The collectors (in exposition order), the subsystems (in start order), the CLI
command groups, the metric catalog they declare together and the `Config` model
made of their sections. Core modules (agent/collector.py, agent/subsystem.py,
agent/runtime.py, ...) never import a plugin, and plugins never import this
module or the daemon; a test re-reads the import graph to keep it so.

The collector classes are imported with this module: they are light (none imports
NVML or bcc before it starts). The subsystems pull in aiohttp, gRPC and the
OpenTelemetry protobufs, so `subsystem_classes()` imports them when asked, and a
command such as `infernode tune plan` does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from agent.bootstrap.settings import BootstrapSettings
from agent.catalog import Catalog
from agent.collector import Collector, CollectorSettings
from agent.cost.settings import CostSettings
from agent.settings import EventSettings, LogSettings, Section, ServerSettings
from agent.tracing.settings import ExplainSettings, OtlpSettings
from agent.worker.settings import Workers
from collectors.cgroup import CgroupCollector, CgroupSettings
from collectors.ebpf.collector import EbpfCollector
from collectors.ebpf.settings import EbpfSettings
from collectors.gpu.collector import GpuCollector, GpuSettings
from collectors.host.cpu import CpuCollector
from collectors.host.diskstats import DiskstatsCollector
from collectors.host.loadavg import LoadavgCollector
from collectors.host.meminfo import MeminfoCollector
from collectors.host.netdev import NetdevCollector
from collectors.host.pressure import PressureCollector
from tuning.settings import TuningSettings

if TYPE_CHECKING:
    from agent.bootstrap.settings import BootstrapConfig
    from agent.cost.settings import CostConfig
    from agent.subsystem import Subsystem
    from agent.tracing.settings import TracingConfig
    from agent.worker.settings import WorkerConfig
    from collectors.ebpf.settings import EbpfConfig
    from tuning.settings import TuningConfig

    def _every_view(c: Config) -> tuple[BootstrapConfig, TuningConfig, WorkerConfig, TracingConfig, EbpfConfig,
                                        CostConfig]:
        """For the type checker only: Config is each plugin's view of the config
        (a plugin names just the sections it reads, as a Protocol)."""
        return (c, c, c, c, c, c)

# In exposition order.
COLLECTORS: tuple[type[Collector], ...] = (
    LoadavgCollector,
    CpuCollector,
    MeminfoCollector,
    PressureCollector,
    DiskstatsCollector,
    NetdevCollector,
    CgroupCollector,
    GpuCollector,
    EbpfCollector,
)

# `infernode <name>` -> "module:attribute", imported only when that command runs.
COMMANDS: dict[str, str] = {
    "topology": "collectors.gpu.cli:command",
    "workers": "agent.worker.cli:workers",
    "drain": "agent.worker.cli:drain",
    "cordon": "agent.worker.cli:cordon",
    "uncordon": "agent.worker.cli:uncordon",
    "tune": "tuning.cli:tune",
    "bootstrap": "agent.bootstrap.cli:bootstrap",
    "explain": "agent.tracing.cli:explain",
    "slow": "agent.tracing.cli:slow",
    "ebpf": "collectors.ebpf.cli:ebpf",
    "cost": "agent.cost.cli:cost",
}


class CollectorsSettings(Section):
    """One field per entry of COLLECTORS, named as the collector and typed as its
    settings_model (a test holds the two together)."""

    loadavg: CollectorSettings = Field(default_factory=CollectorSettings)
    cpu: CollectorSettings = Field(default_factory=CollectorSettings)
    meminfo: CollectorSettings = Field(default_factory=CollectorSettings)
    pressure: CollectorSettings = Field(default_factory=CollectorSettings)
    diskstats: CollectorSettings = Field(default_factory=CollectorSettings)
    netdev: CollectorSettings = Field(default_factory=CollectorSettings)
    cgroup: CgroupSettings = Field(default_factory=CgroupSettings)
    gpu: GpuSettings = Field(default_factory=GpuSettings)
    ebpf: EbpfSettings = Field(default_factory=EbpfSettings)

    def of(self, collector: type[Collector]) -> CollectorSettings:
        settings = getattr(self, collector.name)
        if not isinstance(settings, collector.settings_model):
            raise TypeError(f"collectors.{collector.name} is a {type(settings).__name__}, "
                            f"not {collector.name}'s {collector.settings_model.__name__}")
        return settings


class Config(Section):
    """The whole config file. Every section rejects unknown keys."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    collectors: CollectorsSettings = Field(default_factory=CollectorsSettings)
    tuning: TuningSettings = Field(default_factory=TuningSettings)
    bootstrap: BootstrapSettings = Field(default_factory=BootstrapSettings)
    workers: Workers = Field(default_factory=list)
    otlp: OtlpSettings = Field(default_factory=OtlpSettings)
    explain: ExplainSettings = Field(default_factory=ExplainSettings)
    cost: CostSettings = Field(default_factory=CostSettings)


def subsystem_classes() -> tuple[type[Subsystem[Config]], ...]:
    """The daemon's subsystems in start order (stopped in reverse)."""
    from agent.bootstrap.subsystem import BootstrapSubsystem
    from agent.cost.subsystem import CostSubsystem
    from agent.tracing.subsystem import TracingSubsystem
    from agent.worker.subsystem import WorkerSupervisor
    from tuning.subsystem import TuningSubsystem

    # Tuning before the worker: the worker reads the inference CPU set it publishes.
    # The cost ledger last: it reads what the worker, the span pipeline and the GPU
    # collector publish.
    return (BootstrapSubsystem, TuningSubsystem, WorkerSupervisor, TracingSubsystem, CostSubsystem)


def build_catalog() -> Catalog:
    """Every metric the agent can expose: its own, each collector's and each
    subsystem's, whether the config turns them on or not."""
    from agent.specs import LISTENER_SPECS, RUNTIME_SPECS, SELF_SPECS

    catalog = Catalog()
    catalog.add("agent", RUNTIME_SPECS)
    catalog.add("agent", SELF_SPECS)
    catalog.add("agent", LISTENER_SPECS)
    for cls in COLLECTORS:
        catalog.add(cls.name, cls.specs)
    for scls in subsystem_classes():
        catalog.add(scls.name, scls.specs)
    return catalog
