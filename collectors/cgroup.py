"""The inference slice and each unit in it: CPU, throttling, memory, I/O and PSI.

Works on the unified hierarchy (cgroup v2) and on v1/hybrid hosts, where each
controller is its own hierarchy under /sys/fs/cgroup/<controller> and the v2 tree,
when mounted at /sys/fs/cgroup/unified, still carries PSI files. Series are
labelled with the cgroup's canonical path (as agent.cgroups gives for a pid, so
events and metrics join) and its systemd unit.

A limit that is not set ("max" on v2, PAGE_COUNTER_MAX on v1) gives no series
rather than +Inf or 0: `current / max` then only exists, and only alerts, for
cgroups that have a limit. A file that is missing (controller not enabled for the
unit, unit stopped mid-scrape) gives no series; a file with garbage fails the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from agent.catalog import MetricSpec, MetricType
from agent.cgroups import unit_of_cgroup
from agent.collector import Collector, CollectorSettings, NoDataError
from agent.doctor_row import DoctorRow
from agent.hostfs import read_optional, read_text
from agent.paths import Paths
from agent.samples import Sample
from collectors.host.pressure import parse_pressure

_L = ("cgroup", "unit")
_V2 = "cgroup v2 "
_V1 = "cgroup v1 "
# Seen on 6.18: v1 blkio counts a device only once blk-throttle is on for it, which a
# first throttle rule (of any cgroup) does; until then every cgroup reads "Total 0".
_V1_THROTTLE = " (on recent kernels, only for devices some cgroup has a blkio throttle rule on)"

CGROUP_CPU_USAGE_SECONDS_TOTAL = MetricSpec(
    "infernode_cgroup_cpu_usage_seconds_total", MetricType.COUNTER,
    "CPU time used by the cgroup's tasks, user plus system.", unit="seconds", labels=_L,
    source=_V2 + "cpu.stat usage_usec; " + _V1 + "cpuacct.usage (ns)"
)
CGROUP_CPU_PERIODS_TOTAL = MetricSpec(
    "infernode_cgroup_cpu_periods_total", MetricType.COUNTER,
    "CFS bandwidth enforcement periods that elapsed while the cgroup had runnable tasks.", labels=_L,
    source=_V2 + "cpu.stat nr_periods; " + _V1 + "cpu.stat nr_periods"
)
CGROUP_CPU_THROTTLED_PERIODS_TOTAL = MetricSpec(
    "infernode_cgroup_cpu_throttled_periods_total", MetricType.COUNTER,
    "Periods in which the cgroup exhausted its CPU quota and was throttled.", labels=_L,
    source=_V2 + "cpu.stat nr_throttled; " + _V1 + "cpu.stat nr_throttled"
)
CGROUP_CPU_THROTTLED_SECONDS_TOTAL = MetricSpec(
    "infernode_cgroup_cpu_throttled_seconds_total", MetricType.COUNTER,
    "Time the cgroup's tasks were throttled by its CPU quota.", unit="seconds", labels=_L,
    source=_V2 + "cpu.stat throttled_usec; " + _V1 + "cpu.stat throttled_time (ns)"
)
CGROUP_MEMORY_CURRENT_BYTES = MetricSpec(
    "infernode_cgroup_memory_current_bytes", MetricType.GAUGE,
    "Memory charged to the cgroup (anon, page cache, kernel).", unit="bytes", labels=_L,
    source=_V2 + "memory.current; " + _V1 + "memory.usage_in_bytes"
)
CGROUP_MEMORY_HIGH_BYTES = MetricSpec(
    "infernode_cgroup_memory_high_bytes", MetricType.GAUGE,
    "Memory throttle limit (memory.high); absent when unlimited or on v1, which has none.",
    unit="bytes", labels=_L, source=_V2 + "memory.high"
)
CGROUP_MEMORY_MAX_BYTES = MetricSpec(
    "infernode_cgroup_memory_max_bytes", MetricType.GAUGE,
    "Hard memory limit; absent when unlimited.", unit="bytes", labels=_L,
    source=_V2 + "memory.max; " + _V1 + "memory.limit_in_bytes"
)
CGROUP_MEMORY_EVENTS_TOTAL = MetricSpec(
    "infernode_cgroup_memory_events_total", MetricType.COUNTER,
    "Memory events of the cgroup and its descendants: low, high, max, oom, oom_kill, oom_group_kill.",
    labels=(*_L, "event"),
    source=_V2 + "memory.events; " + _V1 + "memory.oom_control oom_kill, memory.failcnt as max"
)
CGROUP_IO_BYTES_TOTAL = MetricSpec(
    "infernode_cgroup_io_bytes_total", MetricType.COUNTER,
    "Bytes the cgroup read, wrote or discarded on a block device.", unit="bytes",
    labels=(*_L, "device", "direction"),
    source=_V2 + "io.stat rbytes/wbytes/dbytes; " + _V1 + "blkio.throttle.io_service_bytes_recursive" + _V1_THROTTLE
)
CGROUP_IO_OPS_TOTAL = MetricSpec(
    "infernode_cgroup_io_ops_total", MetricType.COUNTER,
    "Read, write or discard operations the cgroup issued to a block device.",
    labels=(*_L, "device", "direction"),
    source=_V2 + "io.stat rios/wios/dios; " + _V1 + "blkio.throttle.io_serviced_recursive" + _V1_THROTTLE
)
CGROUP_PRESSURE_STALL_SECONDS_TOTAL = MetricSpec(
    "infernode_cgroup_pressure_stall_seconds_total", MetricType.COUNTER,
    "Time in which some or all (full) of the cgroup's non-idle tasks were stalled on the resource.",
    unit="seconds", labels=(*_L, "resource", "scope"),
    source="cgroup v2 {cpu,memory,io}.pressure total= (also read from the unified tree on hybrid hosts)"
)
SPECS = (
    CGROUP_CPU_USAGE_SECONDS_TOTAL,
    CGROUP_CPU_PERIODS_TOTAL,
    CGROUP_CPU_THROTTLED_PERIODS_TOTAL,
    CGROUP_CPU_THROTTLED_SECONDS_TOTAL,
    CGROUP_MEMORY_CURRENT_BYTES,
    CGROUP_MEMORY_HIGH_BYTES,
    CGROUP_MEMORY_MAX_BYTES,
    CGROUP_MEMORY_EVENTS_TOTAL,
    CGROUP_IO_BYTES_TOTAL,
    CGROUP_IO_OPS_TOTAL,
    CGROUP_PRESSURE_STALL_SECONDS_TOTAL,
)


class CgroupSettings(CollectorSettings):
    # The systemd slice the inference workers run in.
    slice: str = Field(default="inference.slice", pattern=r"^[A-Za-z0-9:_.\\-]+\.slice$")


# v1 memory.limit_in_bytes reads PAGE_COUNTER_MAX pages (about 2^63 bytes) when
# unlimited; no machine has 2^62 bytes, so anything above is "no limit".
_V1_UNLIMITED = 1 << 62

_IO_SPECS = {"bytes": CGROUP_IO_BYTES_TOTAL, "ops": CGROUP_IO_OPS_TOTAL}
_IO_V2 = {"rbytes": ("bytes", "read"), "wbytes": ("bytes", "write"), "dbytes": ("bytes", "discard"),
          "rios": ("ops", "read"), "wios": ("ops", "write"), "dios": ("ops", "discard")}
_BLKIO_OPS = {"Read": "read", "Write": "write", "Discard": "discard"}


# ---- pure parsers ----------------------------------------------------------------

def slice_path(name: str) -> str:
    """Cgroup path of a systemd slice: "a-b.slice" lives at /a.slice/a-b.slice."""
    if name == "-.slice":
        return "/"
    stem = name[: -len(".slice")]
    parts = stem.split("-")
    return "/" + "/".join("-".join(parts[: i + 1]) + ".slice" for i in range(len(parts)))


def parse_flat_keyed(text: str, what: str) -> dict[str, int]:
    """{key: int} from "key value" lines (cpu.stat, memory.events, memory.oom_control)."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not _is_int(fields[1]):
            raise ValueError(f"{what} line {lineno}: expected 'key integer', got {line[:60]!r}")
        out[fields[0]] = int(fields[1])
    return out


def parse_int(text: str, what: str) -> int:
    value = text.strip()
    if not _is_int(value):
        raise ValueError(f"{what}: expected an integer, got {value[:40]!r}")
    return int(value)


def parse_v2_limit(text: str, what: str) -> int | None:
    """Bytes, or None for "max" (no limit)."""
    if text.strip() == "max":
        return None
    return parse_int(text, what)


def parse_v1_limit(text: str, what: str) -> int | None:
    value = parse_int(text, what)
    return None if value >= _V1_UNLIMITED else value


def parse_io_stat(text: str, what: str = "io.stat") -> dict[str, dict[str, int]]:
    """{"maj:min": {"rbytes": n, ...}} from a v2 io.stat (keys the kernel adds later,
    such as cost.* from iocost, are kept and ignored by the caller)."""
    out: dict[str, dict[str, int]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        dev = fields[0]
        if ":" not in dev:
            raise ValueError(f"{what} line {lineno}: expected 'MAJ:MIN key=value ...', got {line[:60]!r}")
        stats: dict[str, int] = {}
        for f in fields[1:]:
            k, sep, v = f.partition("=")
            if not sep:
                raise ValueError(f"{what} line {lineno}: {f!r} is not key=value")
            if _is_int(v):
                stats[k] = int(v)
        out[dev] = stats
    return out


def parse_blkio(text: str, what: str = "blkio") -> dict[str, dict[str, int]]:
    """{"maj:min": {"Read": n, "Write": n, ...}} from a v1 blkio rwstat file; the
    closing "Total N" line (all devices) is skipped."""
    out: dict[str, dict[str, int]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or (len(fields) == 2 and fields[0] == "Total"):
            continue
        if len(fields) != 3 or ":" not in fields[0] or not _is_int(fields[2]):
            raise ValueError(f"{what} line {lineno}: expected 'MAJ:MIN Op N', got {line[:60]!r}")
        out.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    return out


def parse_uevent_devname(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("DEVNAME="):
            return line[len("DEVNAME="):]
    return None


def _is_int(s: str) -> bool:
    return s.isdigit() or (s[:1] == "-" and s[1:].isdigit())


# ---- layout and discovery --------------------------------------------------------

@dataclass
class Layout:
    """Where each hierarchy is mounted. On v2 only `unified` is set; on hybrid
    `unified` is the v2 tree beside the v1 controllers (PSI comes from it)."""

    kind: str  # v2 | hybrid | v1 | none
    unified: Path | None = None
    v1: dict[str, Path] = field(default_factory=dict)


def detect_layout(paths: Paths) -> Layout:
    root = paths.cgroup()
    if (root / "cgroup.controllers").exists():
        return Layout("v2", unified=root)
    v1 = {c: root / c for c in ("systemd", "cpu", "cpuacct", "memory", "blkio") if (root / c).is_dir()}
    unified = root / "unified"
    if (unified / "cgroup.controllers").exists():
        return Layout("hybrid", unified=unified, v1=v1)
    return Layout("v1" if v1 else "none", v1=v1)


def _discovery_roots(layout: Layout) -> list[Path]:
    if layout.kind == "v2":
        return [layout.unified] if layout.unified else []
    # The systemd hierarchy holds every unit whatever its accounting settings.
    return [p for p in (layout.v1.get("systemd"), layout.unified, layout.v1.get("cpu"),
                        layout.v1.get("memory")) if p is not None]


def find_cgroups(base: Path, rel: str) -> list[str]:
    """rel and each unit below it, walking into sub-slices but not into units (a
    service's own sub-cgroups are its business), sorted for a stable exposition."""
    out = [rel]
    try:
        children = sorted(e.name for e in os.scandir(base / rel.lstrip("/")) if e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return out
    for name in children:
        child = f"{rel.rstrip('/')}/{name}"
        if name.endswith(".slice"):
            out.extend(find_cgroups(base, child))
        elif name.endswith((".service", ".scope")):
            out.append(child)
    return out


# ---- the collector ---------------------------------------------------------------

class CgroupCollector(Collector):
    name = "cgroup"
    specs = SPECS
    settings_model = CgroupSettings

    @property
    def slice_name(self) -> str:
        return getattr(self.ctx.settings, "slice", "inference.slice")

    def _locate(self) -> tuple[Layout, str, Path | None]:
        """(layout, slice path, the hierarchy root its units are listed from, or None
        when the slice does not exist)."""
        layout = detect_layout(self.paths)
        rel = slice_path(self.slice_name)
        base = next((r for r in _discovery_roots(layout) if (r / rel.lstrip("/")).is_dir()), None)
        return layout, rel, base

    def collect(self) -> Iterable[Sample]:
        layout, rel, base = self._locate()
        if base is None:
            raise NoDataError(
                f"{self.slice_name} does not exist in the {layout.kind} cgroup hierarchy",
                f"start a worker in {self.slice_name} (or set collectors.cgroup.slice)",
            )
        devnames: dict[str, str] = {}
        for cg in find_cgroups(base, rel):
            labels = {"cgroup": cg, "unit": unit_of_cgroup(cg)}
            if layout.kind == "v2":
                assert layout.unified is not None
                yield from self._v2(layout.unified / cg.lstrip("/"), labels, devnames)
            else:
                yield from self._v1(layout, cg.lstrip("/"), labels, devnames)
                if layout.unified is not None:
                    yield from self._pressure(layout.unified / cg.lstrip("/"), labels)

    def doctor(self) -> Iterable[DoctorRow]:
        layout, rel, base = self._locate()
        if base is None:
            yield DoctorRow("cgroup", self.slice_name, "warn", f"not present ({layout.kind} hierarchy)",
                            f"start a worker in {self.slice_name}")
            return
        units = find_cgroups(base, rel)[1:]
        yield DoctorRow("cgroup", self.slice_name, "ok",
                        f"{layout.kind} hierarchy, {len(units)} unit(s): {', '.join(unit_of_cgroup(u) for u in units) or 'none'}")

    # v2 ---------------------------------------------------------------------------

    def _v2(self, d: Path, labels: dict[str, str], devnames: dict[str, str]) -> Iterable[Sample]:
        text = read_optional(d / "cpu.stat")
        if text is not None:
            stat = parse_flat_keyed(text, str(d / "cpu.stat"))
            yield from self._cpu(labels, stat.get("usage_usec"), 1e6, stat.get("nr_periods"),
                                 stat.get("nr_throttled"), stat.get("throttled_usec"))
        text = read_optional(d / "memory.current")
        if text is not None:
            yield CGROUP_MEMORY_CURRENT_BYTES.emit(labels,
                         float(parse_int(text, str(d / "memory.current"))))
        for fname, spec in (("memory.high", CGROUP_MEMORY_HIGH_BYTES), ("memory.max", CGROUP_MEMORY_MAX_BYTES)):
            text = read_optional(d / fname)
            limit = None if text is None else parse_v2_limit(text, str(d / fname))
            if limit is not None:
                yield spec.emit(labels, float(limit))
        text = read_optional(d / "memory.events")
        if text is not None:
            for event, n in parse_flat_keyed(text, str(d / "memory.events")).items():
                yield CGROUP_MEMORY_EVENTS_TOTAL.emit({**labels, "event": event}, float(n))
        text = read_optional(d / "io.stat")
        if text is not None:
            for dev, stats in parse_io_stat(text, str(d / "io.stat")).items():
                device = self._devname(dev, devnames)
                for key, (what, direction) in _IO_V2.items():
                    if key in stats:
                        yield _IO_SPECS[what].emit({**labels, "device": device, "direction": direction}, float(stats[key]))
        yield from self._pressure(d, labels)

    # v1 / hybrid ------------------------------------------------------------------

    def _v1(self, layout: Layout, cg: str, labels: dict[str, str], devnames: dict[str, str]) -> Iterable[Sample]:
        usage = periods = throttled = throttled_ns = None
        if "cpuacct" in layout.v1:
            text = read_optional(layout.v1["cpuacct"] / cg / "cpuacct.usage")
            if text is not None:
                usage = parse_int(text, str(layout.v1["cpuacct"] / cg / "cpuacct.usage"))
        if "cpu" in layout.v1:
            text = read_optional(layout.v1["cpu"] / cg / "cpu.stat")
            if text is not None:
                stat = parse_flat_keyed(text, str(layout.v1["cpu"] / cg / "cpu.stat"))
                periods, throttled, throttled_ns = (stat.get("nr_periods"), stat.get("nr_throttled"),
                                                    stat.get("throttled_time"))
        yield from self._cpu(labels, usage, 1e9, periods, throttled, throttled_ns)
        mem = layout.v1.get("memory")
        if mem is not None:
            d = mem / cg
            text = read_optional(d / "memory.usage_in_bytes")
            if text is not None:
                yield CGROUP_MEMORY_CURRENT_BYTES.emit(labels,
                             float(parse_int(text, str(d / "memory.usage_in_bytes"))))
            text = read_optional(d / "memory.limit_in_bytes")
            limit = None if text is None else parse_v1_limit(text, str(d / "memory.limit_in_bytes"))
            if limit is not None:
                yield CGROUP_MEMORY_MAX_BYTES.emit(labels, float(limit))
            # failcnt counts charges that hit the limit: v2's "max" event.
            text = read_optional(d / "memory.failcnt")
            if text is not None:
                yield CGROUP_MEMORY_EVENTS_TOTAL.emit({**labels, "event": "max"},
                             float(parse_int(text, str(d / "memory.failcnt"))))
            text = read_optional(d / "memory.oom_control")
            if text is not None:
                oom = parse_flat_keyed(text, str(d / "memory.oom_control"))
                if "oom_kill" in oom:  # since 4.13
                    yield CGROUP_MEMORY_EVENTS_TOTAL.emit({**labels, "event": "oom_kill"},
                                 float(oom["oom_kill"]))
        # v1 blkio only counts a cgroup's I/O on devices where blk-throttle is active,
        # which recent kernels (seen on 6.18) switch on at a device's first throttle
        # rule: on a v1 host without any rule these read zero.
        blkio = layout.v1.get("blkio")
        if blkio is not None:
            for fname, what in (("blkio.throttle.io_service_bytes_recursive", "bytes"),
                                ("blkio.throttle.io_serviced_recursive", "ops")):
                text = read_optional(blkio / cg / fname)
                if text is None:
                    continue
                for dev, ops in parse_blkio(text, str(blkio / cg / fname)).items():
                    device = self._devname(dev, devnames)
                    for op, direction in _BLKIO_OPS.items():
                        if op in ops:
                            yield _IO_SPECS[what].emit({**labels, "device": device, "direction": direction}, float(ops[op]))

    # shared -----------------------------------------------------------------------

    @staticmethod
    def _cpu(labels: dict[str, str], usage: int | None, per_second: float, periods: int | None,
             throttled: int | None, throttled_t: int | None) -> Iterable[Sample]:
        if usage is not None:
            yield CGROUP_CPU_USAGE_SECONDS_TOTAL.emit(labels, usage / per_second)
        # Throttling fields exist only where the cpu controller is enabled.
        if periods is not None:
            yield CGROUP_CPU_PERIODS_TOTAL.emit(labels, float(periods))
        if throttled is not None:
            yield CGROUP_CPU_THROTTLED_PERIODS_TOTAL.emit(labels, float(throttled))
        if throttled_t is not None:
            yield CGROUP_CPU_THROTTLED_SECONDS_TOTAL.emit(labels, throttled_t / per_second)

    @staticmethod
    def _pressure(d: Path, labels: dict[str, str]) -> Iterable[Sample]:
        for resource in ("cpu", "memory", "io"):
            path = d / f"{resource}.pressure"
            try:
                text = read_text(path)
            except OSError:
                # Absent without CONFIG_PSI; EOPNOTSUPP when PSI is disabled at boot.
                continue
            for scope, seconds in parse_pressure(text, str(path)).items():
                yield CGROUP_PRESSURE_STALL_SECONDS_TOTAL.emit({**labels, "resource": resource, "scope": scope}, seconds)

    def _devname(self, dev: str, cache: dict[str, str]) -> str:
        """Block device name for "maj:min" from /sys/dev/block, else "maj:min"."""
        name = cache.get(dev)
        if name is None:
            text = read_optional(self.paths.sys("dev", "block", dev, "uevent"))
            name = (parse_uevent_devname(text) if text is not None else None) or dev
            cache[dev] = name
        return name
