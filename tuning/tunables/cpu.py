"""CPU frequency policy and the C-state exit latency cap."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from agent.paths import Paths
from tuning.tunable import Tunable, TunableError, Unsupported, choice_validator, int_validator, read_file, write_file

GOVERNORS = ("performance", "powersave", "schedutil", "ondemand", "conservative", "userspace")
EPP_VALUES = ("default", "performance", "balance_performance", "balance_power", "power")


class _PerCpu(Tunable):
    family = "cpu"
    attribute = ""
    available = ""

    def targets(self) -> list[str]:
        return [f"cpu{c}" for c in sorted(self.ctx.topology.all_cpus)]

    def _path(self, target: str, attr: str) -> Path:
        return self.ctx.paths.sys("devices", "system", "cpu", target, "cpufreq", attr)

    def read(self, target: str) -> str:
        return read_file(self._path(target, self.attribute)).strip()

    def write(self, target: str, value: str) -> None:
        try:
            offered = read_file(self._path(target, self.available)).split()
        except Unsupported:
            offered = []
        if offered and value not in offered:
            raise TunableError(f"{target} offers {' '.join(offered)}, not {value!r} (cpufreq driver)")
        write_file(self._path(target, self.attribute), value)


class CpuGovernor(_PerCpu):
    """cpufreq scaling governor of each CPU (`/sys/devices/system/cpu/cpuN/cpufreq/scaling_governor`).

    `performance` keeps cores at their highest frequency so a decode step never
    waits for a frequency ramp. Unsupported where there is no cpufreq driver (most VMs).
    """

    name = "cpu.governor"
    attribute = "scaling_governor"
    available = "scaling_available_governors"
    checker = staticmethod(choice_validator(GOVERNORS))


class CpuEnergyPerformancePreference(_PerCpu):
    """Energy/performance preference hint of each CPU
    (`/sys/devices/system/cpu/cpuN/cpufreq/energy_performance_preference`; intel_pstate
    and amd-pstate in active mode). tuned sets the older `energy_perf_bias`; EPP is
    the hint HWP-era CPUs actually follow."""

    name = "cpu.energy_performance_preference"
    attribute = "energy_performance_preference"
    available = "energy_performance_available_preferences"
    checker = staticmethod(choice_validator(EPP_VALUES))


class LatencyHolder:
    """Keeps /dev/cpu_dma_latency open with a value written to it.

    The kernel's PM QoS request lives exactly as long as the file descriptor: the
    cap holds while the daemon runs and is released when it stops (or dies) — the
    host then returns to its default C-state policy. Nothing persists."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.fd: int | None = None
        self.value: int | None = None

    def hold(self, microseconds: int) -> None:
        if self.fd is None:
            self.fd = os.open(self.paths.dev("cpu_dma_latency"), os.O_RDWR)
        os.lseek(self.fd, 0, os.SEEK_SET)
        # The device takes a native s32 (or its ASCII hex); binary is unambiguous.
        os.write(self.fd, struct.pack("=i", microseconds))
        self.value = microseconds

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd = None
        self.value = None


class CpuDmaLatency(Tunable):
    """C-state exit latency cap in microseconds, through `/dev/cpu_dma_latency`.

    Deep C-states cost tens to hundreds of microseconds to leave; capping the exit
    latency keeps cores responsive to a GPU completion or a packet. The kernel
    honours the cap only while a process holds the device open, so the agent
    daemon holds it while it runs and it is released when the daemon stops. `tune
    apply` from the command line shows it as `hold` (daemon-held), not applied.
    `read` is the kernel's effective cap (the strictest of all holders), so
    `<=N` is the natural desired form."""

    name = "cpu.dma_latency_us"
    family = "cpu"
    process_held = True
    checker = staticmethod(int_validator(0, 2_000_000_000))

    def targets(self) -> list[str]:
        return ["system"]

    def read(self, target: str) -> str:
        path = self.ctx.paths.dev("cpu_dma_latency")
        try:
            with open(path, "rb") as f:
                raw = f.read(4)
        except FileNotFoundError:
            raise Unsupported(f"{path} does not exist") from None
        if len(raw) != 4:
            raise Unsupported(f"{path}: expected a 4-byte value, got {len(raw)} bytes")
        return str(struct.unpack("=i", raw)[0])

    def write(self, target: str, value: str) -> None:
        if self.ctx.holder is None:
            raise TunableError("the cap holds only while a process keeps /dev/cpu_dma_latency open; the daemon does that")
        self.ctx.holder.hold(int(value))

    def restore(self, target: str, original: str) -> None:
        if self.ctx.holder is not None:
            self.ctx.holder.release()


