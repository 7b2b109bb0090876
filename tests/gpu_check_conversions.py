"""The risky parts of the GPU collector, checked on real hardware by `make gpu-check`:
units NVML gives in odd scales (energy in mJ, NVLink in KiB, throttle time in ns),
the PCIe link against nvidia-smi and sysfs, the topology against `nvidia-smi topo -m`,
and the kernel-log XID parser against what the kernel log holds (read-only).

Each function here is pure: it takes what main() read and returns table rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.topology import GpuInfo


@dataclass
class Check:
    gpu: str
    field: str
    smi: str  # the reference side: nvidia-smi, sysfs, NVML read another way, or the kernel log
    ours: str
    tolerance: str
    ok: bool


def skipped(gpu: str, field: str, why: str) -> Check:
    return Check(gpu, field, "-", "-", f"skipped: {why}", True)


def energy_check(gpu: str, joules_before: float | None, joules_after: float | None, seconds: float,
                 watts: Sequence[float]) -> Check:
    """The energy counter's rise over `seconds` against the mean power read meanwhile:
    a mJ/J mix-up is off by 1000x, so +-25% (power moves between reads) is sharp enough."""
    if joules_before is None or joules_after is None or not watts or seconds <= 0:
        return skipped(gpu, "energy (J/s vs W)", "no energy counter or power reading")
    rate = (joules_after - joules_before) / seconds
    mean = sum(watts) / len(watts)
    ok = abs(rate - mean) <= max(10.0, 0.25 * mean)
    return Check(gpu, "energy (J/s vs W)", f"{mean:.1f} W mean power", f"{rate:.1f} J/s", "+-max(10 W, 25%)", ok)


def nvlink_check(gpu: str, direction: str, per_link_before: float | None, aggregate: float | None,
                 per_link_after: float | None) -> Check:
    """The all-links aggregate (what the collector exports, KiB) must lie between two
    sums of the per-link counters read just before and just after it. If per-link
    scopes returned the GPU-wide value, the sums would be 18x the aggregate."""
    field = f"nvlink {direction} KiB (aggregate vs links)"
    if aggregate is None:
        return skipped(gpu, field, "no NVLink data counters")
    if per_link_before is None or per_link_after is None:
        return skipped(gpu, field, "per-link counters not supported")
    lo, hi = min(per_link_before, per_link_after), max(per_link_before, per_link_after)
    slack = max(1024.0, 0.01 * hi)
    ok = lo - slack <= aggregate <= hi + slack
    return Check(gpu, field, f"{lo:.0f}..{hi:.0f} summed", f"{aggregate:.0f}", "between the sums +-1%", ok)


def violation_check(gpu: str, field_ns: float | None, deprecated_ns: float | None) -> Check:
    """Power-cap throttle time from field 74 and from the deprecated call: NVML documents
    both in ns, so they must agree (within 1 s: they are read a moment apart)."""
    name = "throttle power ns (FI 74 vs call)"
    if field_ns is None or deprecated_ns is None:
        return skipped(gpu, name, "one of the two is not supported")
    ok = abs(field_ns - deprecated_ns) <= 1e9
    return Check(gpu, name, f"{deprecated_ns:.0f}", f"{field_ns:.0f}", "+-1 s", ok)


def exact(gpu: str, field: str, ref: float | None, ours: float | None, ref_name: str) -> Check:
    if ref is None or ours is None:
        return skipped(gpu, field, f"not reported by both ({ref_name}, infernode)")
    return Check(gpu, field, f"{ref:g}", f"{ours:g}", f"exact ({ref_name})", ref == ours)


def parse_topo_matrix(text: str) -> dict[str, dict[str, str]]:
    """`nvidia-smi topo -m` -> {"0": {"CPU Affinity": "0-55,112-167", "NUMA Affinity": "0"}}.
    Columns are tab-separated; the header's first cell is empty, each row's first cell
    is its device (GPU0, NIC0)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # nvidia-smi underlines the header, piped or not
    lines = [ln.rstrip("\n") for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty `nvidia-smi topo -m` output")
    header = [c.strip() for c in lines[0].split("\t")]
    wanted = [name for name in ("CPU Affinity", "NUMA Affinity") if name in header]
    if not wanted:
        raise ValueError(f"no CPU/NUMA Affinity column in {header!r}")
    out: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("\t")]
        if not cells or not cells[0].startswith("GPU") or not cells[0][3:].isdigit():
            continue
        if len(cells) < len(header):
            raise ValueError(f"row has {len(cells)} cells, header {len(header)}: {line!r}")
        out[cells[0][3:]] = {name: cells[header.index(name)] for name in wanted}
    return out


def topology_checks(matrix: Mapping[str, Mapping[str, str]], gpus: Iterable[GpuInfo]) -> list[Check]:
    """Our GpuInfo (numa_node, local_cpus) against `nvidia-smi topo -m`."""
    from agent.cpulist import format_cpulist, parse_cpulist

    checks = []
    for g in gpus:
        idx = str(g.index)
        row = matrix.get(idx)
        if row is None:
            checks.append(skipped(idx, "topology", "GPU not in `nvidia-smi topo -m`"))
            continue
        cpus = row.get("CPU Affinity", "N/A")
        ours_cpus = format_cpulist(g.local_cpus)
        if cpus in ("N/A", ""):
            checks.append(skipped(idx, "CPU affinity", "nvidia-smi says N/A"))
        else:
            try:
                ref = format_cpulist(parse_cpulist(cpus))
            except ValueError:
                ref = cpus
            checks.append(Check(idx, "CPU affinity", ref, ours_cpus, "exact (topo -m)", ref == ours_cpus))
        numa = row.get("NUMA Affinity", "N/A")
        node = g.numa_node
        if not numa.isdigit():
            checks.append(skipped(idx, "NUMA node", f"nvidia-smi says {numa or 'nothing'}"))
        else:
            checks.append(Check(idx, "NUMA node", numa, str(node), "exact (topo -m)", str(node) == numa))
    return checks


def kmsg_check(messages: Iterable[str]) -> Check:
    """Every NVRM Xid / SXid line the kernel log holds must parse (read-only: nothing
    is written)."""
    from collectors.gpu.kmsg import parse_line

    seen = parsed = 0
    unparsed = ""
    for m in messages:
        if "NVRM: Xid" in m or ": SXid (" in m:
            seen += 1
            if parse_line(m) is not None:
                parsed += 1
            elif not unparsed:
                unparsed = m[:80]
    if not seen:
        return Check("-", "kernel-log XID lines", "0 lines", "0 parsed", "none in the log now", True)
    return Check("-", "kernel-log XID lines", f"{seen} lines", f"{parsed} parsed",
                 "all" + (f"; first unparsed: {unparsed!r}" if unparsed else ""), parsed == seen)
