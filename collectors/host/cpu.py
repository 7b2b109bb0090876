"""CPU time by mode, per CPU, from /proc/stat."""

from __future__ import annotations

from collections.abc import Iterable

from agent.catalog import MetricSpec, MetricType
from agent.collector import Collector
from agent.samples import Sample
from collectors.files import read_source

# /proc/stat counts in USER_HZ ticks. USER_HZ is part of the kernel's userspace ABI
# and is 100 on every architecture Linux supports, whatever CONFIG_HZ the kernel was
# built with (the kernel converts jiffies to clock_t before printing). It is a
# constant rather than sysconf(SC_CLK_TCK) so that a fixture tree reads the same on
# any machine.
USER_HZ = 100

# Columns of a cpuN line, in kernel order. guest and guest_nice follow them but are
# already included in user and nice, so summing modes would count guest time twice:
# they are not exported.
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

HOST_CPU_SECONDS_TOTAL = MetricSpec(
    "infernode_host_cpu_seconds_total",
    MetricType.COUNTER,
    "Seconds each CPU spent in each mode since boot.",
    unit="seconds",
    labels=("cpu", "mode"),
    source="/proc/stat cpuN lines (USER_HZ ticks / 100)",
)
SPECS = (
    HOST_CPU_SECONDS_TOTAL,
)


def parse_proc_stat_cpus(text: str) -> dict[str, dict[str, float]]:
    """{"0": {"user": seconds, ...}, ...} from /proc/stat's per-CPU lines.

    The aggregate "cpu" line is skipped: it is the sum of the others. Kernels before
    2.6.11 lack steal and older ones lack irq/softirq; missing trailing columns are
    simply absent from the result.
    """
    out: dict[str, dict[str, float]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        fields = line.split()
        cpu = fields[0][3:]
        if not cpu.isdigit() or len(fields) < 5:
            raise ValueError(f"/proc/stat line {lineno}: malformed cpu line {line[:60]!r}")
        try:
            ticks = [int(v) for v in fields[1 : 1 + len(MODES)]]
        except ValueError:
            raise ValueError(f"/proc/stat line {lineno}: non-numeric cpu time in {line[:60]!r}") from None
        out[cpu] = {mode: t / USER_HZ for mode, t in zip(MODES, ticks, strict=False)}
    if not out:
        raise ValueError("/proc/stat: no cpuN lines")
    return out


class CpuCollector(Collector):
    name = "cpu"
    specs = SPECS

    def collect(self) -> Iterable[Sample]:
        path = self.paths.proc("stat")
        text = read_source(path, "mount procfs at /proc")
        for cpu, modes in parse_proc_stat_cpus(text).items():
            for mode, seconds in modes.items():
                yield HOST_CPU_SECONDS_TOTAL.emit({"cpu": cpu, "mode": mode}, seconds)
