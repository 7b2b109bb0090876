"""The collectors the agent knows, in exposition order.

Imported on demand (the daemon, the config schema, the docs generator), never at
package import, so importing `collectors` loads no NVML, bcc or other source.
"""

from __future__ import annotations

from agent.catalog import Catalog
from agent.collector import Collector


def collector_classes() -> list[type[Collector]]:
    from collectors.cgroup import CgroupCollector
    from collectors.ebpf.collector import EbpfCollector
    from collectors.gpu.collector import GpuCollector
    from collectors.host.cpu import CpuCollector
    from collectors.host.diskstats import DiskstatsCollector
    from collectors.host.loadavg import LoadavgCollector
    from collectors.host.meminfo import MeminfoCollector
    from collectors.host.netdev import NetdevCollector
    from collectors.host.pressure import PressureCollector

    return [
        LoadavgCollector,
        CpuCollector,
        MeminfoCollector,
        PressureCollector,
        DiskstatsCollector,
        NetdevCollector,
        CgroupCollector,
        GpuCollector,
        EbpfCollector,
    ]


def build_catalog() -> Catalog:
    from agent.http_listener import LISTENER_SPECS
    from agent.runtime import RUNTIME_SPECS
    from agent.selfmetrics import SELF_SPECS
    from agent.subsystem import subsystem_classes

    catalog = Catalog()
    catalog.add("agent", RUNTIME_SPECS)
    catalog.add("agent", SELF_SPECS)
    catalog.add("agent", LISTENER_SPECS)
    for cls in collector_classes():
        catalog.add(cls.name, cls.specs)
    for scls in subsystem_classes():
        catalog.add(scls.name, scls.specs)
    return catalog
