"""Memory from /proc/meminfo, and hugepage pools per page size and per NUMA node."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.catalog import MetricSpec, MetricType, spec_named
from agent.collector import Collector
from agent.hostfs import read_optional
from agent.samples import Sample
from collectors.files import read_source

# /proc/meminfo field -> (metric stem, help). Only fields that answer a question an
# operator of an inference node asks; the kernel prints ~55.
MEMINFO_FIELDS: dict[str, tuple[str, str]] = {
    "MemTotal": ("total", "Usable RAM: physical memory minus reserved and the kernel image."),
    "MemFree": ("free", "RAM not used for anything."),
    "MemAvailable": ("available", "Kernel estimate of memory available for new work without swapping."),
    "Buffers": ("buffers", "Block device buffers."),
    "Cached": ("cached", "Page cache, excluding swap cache."),
    "SwapTotal": ("swap_total", "Swap space configured."),
    "SwapFree": ("swap_free", "Swap space unused."),
    "Dirty": ("dirty", "Memory waiting to be written back to storage."),
    "Writeback": ("writeback", "Memory being written back to storage now."),
    "AnonPages": ("anon", "Anonymous memory mapped into user page tables."),
    "AnonHugePages": ("anon_hugepages", "Anonymous memory backed by transparent hugepages."),
    "Shmem": ("shmem", "Shared memory and tmpfs."),
    "Mlocked": ("mlocked", "Memory locked with mlock()."),
    "SReclaimable": ("slab_reclaimable", "Kernel slab memory that can be reclaimed."),
    "SUnreclaim": ("slab_unreclaimable", "Kernel slab memory that cannot be reclaimed."),
    "PageTables": ("page_tables", "Memory used by page tables."),
    "Committed_AS": ("committed", "Memory committed to processes (what they could touch)."),
    "Hugetlb": ("hugetlb", "Memory held by hugetlb pools of all page sizes."),
}

SPECS = tuple(
    MetricSpec(
        f"infernode_host_memory_{stem}_bytes",
        MetricType.GAUGE,
        help_text,
        unit="bytes",
        source=f"/proc/meminfo {field}",
    )
    for field, (stem, help_text) in MEMINFO_FIELDS.items()
) + (
    MetricSpec("infernode_host_hugepages_configured", MetricType.GAUGE,
               "Hugepages in the persistent pool, by page size in bytes.",
               labels=("page_size",), source="/sys/kernel/mm/hugepages/hugepages-*/nr_hugepages"),
    MetricSpec("infernode_host_hugepages_free", MetricType.GAUGE,
               "Hugepages not yet allocated, by page size in bytes.",
               labels=("page_size",), source="/sys/kernel/mm/hugepages/hugepages-*/free_hugepages"),
    MetricSpec("infernode_host_hugepages_reserved", MetricType.GAUGE,
               "Hugepages promised to a mapping but not yet faulted in, by page size in bytes.",
               labels=("page_size",), source="/sys/kernel/mm/hugepages/hugepages-*/resv_hugepages"),
    MetricSpec("infernode_host_hugepages_surplus", MetricType.GAUGE,
               "Hugepages allocated beyond the persistent pool (overcommit), by page size in bytes.",
               labels=("page_size",), source="/sys/kernel/mm/hugepages/hugepages-*/surplus_hugepages"),
    MetricSpec("infernode_host_numa_hugepages_configured", MetricType.GAUGE,
               "Hugepages in the persistent pool of a NUMA node, by page size in bytes.",
               labels=("numa_node", "page_size"),
               source="/sys/devices/system/node/node*/hugepages/hugepages-*/nr_hugepages"),
    MetricSpec("infernode_host_numa_hugepages_free", MetricType.GAUGE,
               "Hugepages not yet allocated on a NUMA node, by page size in bytes.",
               labels=("numa_node", "page_size"),
               source="/sys/devices/system/node/node*/hugepages/hugepages-*/free_hugepages"),
)

_MEMINFO_SPECS = {field: spec_named(SPECS, f"infernode_host_memory_{stem}_bytes")
                  for field, (stem, _) in MEMINFO_FIELDS.items()}
_HUGEPAGE_FILES = {
    "nr_hugepages": spec_named(SPECS, "infernode_host_hugepages_configured"),
    "free_hugepages": spec_named(SPECS, "infernode_host_hugepages_free"),
    "resv_hugepages": spec_named(SPECS, "infernode_host_hugepages_reserved"),
    "surplus_hugepages": spec_named(SPECS, "infernode_host_hugepages_surplus"),
}
_NUMA_HUGEPAGE_FILES = {
    "nr_hugepages": spec_named(SPECS, "infernode_host_numa_hugepages_configured"),
    "free_hugepages": spec_named(SPECS, "infernode_host_numa_hugepages_free"),
}


def parse_meminfo(text: str) -> dict[str, float]:
    """{field: bytes} for every "Name: value [kB]" line. The kernel's "kB" means
    KiB; fields without a unit (HugePages_Total, ...) are counts and kept as is."""
    out: dict[str, float] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields or len(fields) > 2:
            raise ValueError(f"/proc/meminfo line {lineno}: expected 'Name: value [kB]', got {line[:60]!r}")
        try:
            value = int(fields[0])
        except ValueError:
            raise ValueError(f"/proc/meminfo line {lineno}: {key}: value {fields[0]!r} is not a number") from None
        if len(fields) == 2:
            if fields[1] != "kB":
                raise ValueError(f"/proc/meminfo line {lineno}: {key}: unknown unit {fields[1]!r}")
            value *= 1024
        out[key] = float(value)
    if "MemTotal" not in out:
        raise ValueError("/proc/meminfo: no MemTotal line")
    return out


def parse_hugepage_dir_name(name: str) -> int:
    """Page size in bytes from a "hugepages-2048kB" directory name."""
    if not (name.startswith("hugepages-") and name.endswith("kB")):
        raise ValueError(f"unexpected hugepages directory name {name!r}")
    return int(name[len("hugepages-") : -2]) * 1024


def parse_count(text: str, what: str) -> float:
    try:
        return float(int(text.strip()))
    except ValueError:
        raise ValueError(f"{what}: expected an integer, got {text.strip()[:40]!r}") from None


def _hugepage_pools(base: Path) -> list[tuple[int, Path]]:
    """(page size, dir) for each hugepages-* directory, smallest size first."""
    try:
        entries = [p for p in base.iterdir() if p.name.startswith("hugepages-")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((parse_hugepage_dir_name(p.name), p) for p in entries)


def _node_dirs(base: Path) -> list[tuple[int, Path]]:
    try:
        entries = list(base.iterdir())
    except FileNotFoundError:
        return []
    return sorted(
        (int(p.name[4:]), p) for p in entries if p.name.startswith("node") and p.name[4:].isdigit()
    )


class MeminfoCollector(Collector):
    name = "meminfo"
    specs = SPECS

    def collect(self) -> Iterable[Sample]:
        path = self.paths.proc("meminfo")
        text = read_source(path, "mount procfs at /proc")
        values = parse_meminfo(text)
        for field, spec in _MEMINFO_SPECS.items():
            if field in values:
                yield spec.emit({}, values[field])
        yield from self._hugepages()

    def _hugepages(self) -> Iterable[Sample]:
        for size, pool in _hugepage_pools(self.paths.sys("kernel", "mm", "hugepages")):
            labels = {"page_size": str(size)}
            for fname, spec in _HUGEPAGE_FILES.items():
                value = _read_count(pool / fname)
                if value is not None:
                    yield spec.emit(labels, value)
        # Per-node pools exist only on NUMA kernels; a VM without them is normal.
        for node, ndir in _node_dirs(self.paths.sys("devices", "system", "node")):
            for size, pool in _hugepage_pools(ndir / "hugepages"):
                labels = {"numa_node": str(node), "page_size": str(size)}
                for fname, spec in _NUMA_HUGEPAGE_FILES.items():
                    value = _read_count(pool / fname)
                    if value is not None:
                        yield spec.emit(labels, value)


def _read_count(path: Path) -> float | None:
    text = read_optional(path)
    return None if text is None else parse_count(text, str(path))
