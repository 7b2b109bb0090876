"""Block device I/O from /proc/diskstats, for whole disks."""

from __future__ import annotations

import os
from collections.abc import Iterable

from agent.catalog import MetricSpec, MetricType
from agent.collector import Collector
from agent.samples import Sample
from collectors.files import read_source

# The kernel counts diskstats sectors in 512-byte units whatever the device's
# logical sector size (block/genhd.c prints bytes >> 9), so 4Kn NVMe drives are
# converted with the same factor.
SECTOR_BYTES = 512

_SRC = "/proc/diskstats"

# Counters to base units: sectors to bytes, milliseconds to seconds (divided, not
# multiplied by 1e-3, so that 1234 ms reads 1.234 and not 1.2340000000000002).
_CONVERT = {
    "count": float,
    "sectors": lambda v: float(v * SECTOR_BYTES),
    "ms": lambda v: v / 1000,
}

# Column (after major, minor, name) -> (metric, what the column counts, help). Discard columns
# arrived in 4.18 and flush columns in 5.5; shorter lines simply lack them.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("infernode_host_disk_reads_completed_total", "count", "Reads completed successfully."),
    ("infernode_host_disk_reads_merged_total", "count", "Adjacent reads merged before being issued."),
    ("infernode_host_disk_read_bytes_total", "sectors", "Bytes read."),
    ("infernode_host_disk_read_time_seconds_total", "ms", "Time spent on reads, summed over requests."),
    ("infernode_host_disk_writes_completed_total", "count", "Writes completed successfully."),
    ("infernode_host_disk_writes_merged_total", "count", "Adjacent writes merged before being issued."),
    ("infernode_host_disk_written_bytes_total", "sectors", "Bytes written."),
    ("infernode_host_disk_write_time_seconds_total", "ms", "Time spent on writes, summed over requests."),
    ("infernode_host_disk_io_now", "count", "I/O requests in flight now."),
    ("infernode_host_disk_io_time_seconds_total", "ms", "Time the device had at least one request in flight (busy time)."),
    ("infernode_host_disk_io_time_weighted_seconds_total", "ms",
     "Time spent on I/O weighted by requests in flight (its rate is the average queue size)."),
    ("infernode_host_disk_discards_completed_total", "count", "Discards completed successfully."),
    ("infernode_host_disk_discards_merged_total", "count", "Adjacent discards merged before being issued."),
    ("infernode_host_disk_discarded_bytes_total", "sectors", "Bytes discarded."),
    ("infernode_host_disk_discard_time_seconds_total", "ms", "Time spent on discards, summed over requests."),
    ("infernode_host_disk_flushes_completed_total", "count", "Flush requests completed successfully."),
    ("infernode_host_disk_flush_time_seconds_total", "ms", "Time spent on flushes, summed over requests."),
)

SPECS = tuple(
    MetricSpec(
        name,
        MetricType.GAUGE if name == "infernode_host_disk_io_now" else MetricType.COUNTER,
        help_text,
        unit="seconds" if "_seconds" in name else ("bytes" if "_bytes" in name else ""),
        labels=("device",),
        source=_SRC,
    )
    for name, _, help_text in COLUMNS
)

# Pseudo devices that most hosts have by the dozen and almost never use.
_IDLE_PSEUDO_PREFIXES = ("loop", "ram", "zram")
# SPECS in column order, with what each column counts.
_COLUMN_SPECS = tuple(zip(SPECS, (kind for _, kind, _ in COLUMNS), strict=True))


def parse_diskstats(text: str) -> list[tuple[str, list[int]]]:
    """[(device, [counter, ...])] in file order; counters as read (sectors, ms)."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 14:
            raise ValueError(f"{_SRC} line {lineno}: expected at least 14 fields, got {len(fields)}")
        try:
            values = [int(v) for v in fields[3 : 3 + len(COLUMNS)]]
        except ValueError:
            raise ValueError(f"{_SRC} line {lineno}: non-numeric counter for {fields[2]!r}") from None
        out.append((fields[2], values))
    return out


def keep_device(name: str, values: list[int], whole_disks: set[str] | None) -> bool:
    """Whole disks only, so that summing over devices does not count a partition's
    I/O twice (its disk's line includes it); whole_disks None (no /sys/block)
    keeps all. loop/ram/zram devices are kept once they have done any I/O: a loop
    device backing a container image is real work, a never-used one is noise."""
    if whole_disks is not None and name not in whole_disks:
        return False
    if name.startswith(_IDLE_PSEUDO_PREFIXES) and not any(values):
        return False
    return True


class DiskstatsCollector(Collector):
    name = "diskstats"
    specs = SPECS

    def collect(self) -> Iterable[Sample]:
        path = self.paths.proc("diskstats")
        text = read_source(path, "mount procfs at /proc")
        try:
            whole: set[str] | None = set(os.listdir(self.paths.sys("block")))
        except FileNotFoundError:
            whole = None
        for device, values in parse_diskstats(text):
            if not keep_device(device, values, whole):
                continue
            labels = {"device": device}
            for (spec, kind), v in zip(_COLUMN_SPECS, values, strict=False):
                yield spec.emit(labels, _CONVERT[kind](v))
