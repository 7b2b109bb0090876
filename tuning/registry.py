"""Every tunable, in the order the engine plans and applies them (and rolls back
in reverse): memory and CPU policy first, then the kernel's housekeeping, then the
network stack, then NICs, then block devices, then the boot parameters (written
to the boot loader, in effect at the next boot)."""

from __future__ import annotations

from tuning.tunable import Tunable


def tunable_classes() -> list[type[Tunable]]:
    from tuning.tunables.block import BlockReadAhead, BlockScheduler
    from tuning.tunables.boot import BOOT_PARAMS
    from tuning.tunables.cpu import CpuDmaLatency, CpuEnergyPerformancePreference, CpuGovernor
    from tuning.tunables.irq import IrqAffinity
    from tuning.tunables.isolation import (
        SliceAllowedCpus,
        SystemdCpuAffinity,
        WorkqueueCpumask,
        WorkqueueWritebackCpumask,
    )
    from tuning.tunables.memory import Hugepages1GPerNode, Hugepages2MPerNode, ThpDefrag, ThpEnabled
    from tuning.tunables.nic import IrqbalanceBannedCpus, NicChannels, NicIrqAffinity, NicMtu, NicRings
    from tuning.tunables.processes import ProcessAffinity
    from tuning.tunables.sysctl import SYSCTLS

    return [
        CpuGovernor, CpuEnergyPerformancePreference, CpuDmaLatency,
        ThpEnabled, ThpDefrag, Hugepages2MPerNode, Hugepages1GPerNode,
        *SYSCTLS,
        WorkqueueCpumask, WorkqueueWritebackCpumask, SystemdCpuAffinity, SliceAllowedCpus, ProcessAffinity, IrqAffinity,
        NicMtu, NicChannels, NicRings, NicIrqAffinity, IrqbalanceBannedCpus,
        BlockScheduler, BlockReadAhead,
        *BOOT_PARAMS,
    ]


def tunables_by_name() -> dict[str, type[Tunable]]:
    return {cls.name: cls for cls in tunable_classes()}
