"""Transparent hugepages and per-NUMA-node hugepage pools."""

from __future__ import annotations

import re
from pathlib import Path

from tuning.tunable import Tunable, TunableError, choice_validator, int_validator, read_file, selected, write_file


class _Thp(Tunable):
    family = "memory"
    attribute = ""

    def targets(self) -> list[str]:
        return ["system"]

    def _path(self) -> Path:
        return self.ctx.paths.sys("kernel", "mm", "transparent_hugepage", self.attribute)

    def read(self, target: str) -> str:
        return selected(read_file(self._path()))

    def write(self, target: str, value: str) -> None:
        write_file(self._path(), value)


class ThpEnabled(_Thp):
    """Transparent hugepages (`/sys/kernel/mm/transparent_hugepage/enabled`).

    `madvise`: only memory that asks with madvise(MADV_HUGEPAGE) gets huge pages
    (PyTorch's CPU allocator does for buffers of 2 MiB and more when
    `THP_MEM_ALLOC_ENABLE=1`), so other processes see no khugepaged compaction
    stalls, while `never` (tuned's network-latency) would deny them to the
    inference server as well."""

    name = "thp.enabled"
    attribute = "enabled"
    checker = staticmethod(choice_validator(("always", "madvise", "never")))


class ThpDefrag(_Thp):
    """THP defragmentation on fault (`/sys/kernel/mm/transparent_hugepage/defrag`).

    `defer+madvise` keeps direct compaction (a page-fault stall of milliseconds) to
    regions that asked for huge pages and defers the rest to kcompactd."""

    name = "thp.defrag"
    attribute = "defrag"
    checker = staticmethod(choice_validator(("always", "defer", "defer+madvise", "madvise", "never")))


def short_allocation(target: str, wanted: int, got: int, boot_size: str) -> str | None:
    """The error for a pool the kernel filled only partly (it writes what it could
    find, silently), naming the boot parameter that reserves it before memory fragments."""
    if got >= wanted:
        return None
    node = re.sub(r"\D", "", target)
    return (
        f"the kernel allocated {got} of {wanted} {boot_size} pages on {target} "
        f"(memory too fragmented at run time); reserve them at boot instead: "
        f"`hugepagesz={boot_size} hugepages={node}:{wanted}` on the kernel command line"
    )


class _HugepagesPerNode(Tunable):
    family = "memory"
    size_kb = 0
    boot_size = ""

    def targets(self) -> list[str]:
        return [f"node{n}" for n in sorted(self.ctx.topology.nodes)]

    def _path(self, target: str) -> Path:
        return self.ctx.paths.sys(
            "devices", "system", "node", target, "hugepages", f"hugepages-{self.size_kb}kB", "nr_hugepages"
        )

    def read(self, target: str) -> str:
        return read_file(self._path(target)).strip()

    def write(self, target: str, value: str) -> None:
        write_file(self._path(target), value)
        problem = short_allocation(target, int(value), int(self.read(target)), self.boot_size)
        if problem:
            raise TunableError(problem)


class Hugepages2MPerNode(_HugepagesPerNode):
    """2 MiB hugepages reserved on each NUMA node
    (`/sys/devices/system/node/nodeN/hugepages/hugepages-2048kB/nr_hugepages`).

    Per node, so that a worker pinned to a GPU's node finds its pages local. A
    short allocation (fragmented memory) is a failure of the apply and is rolled back."""

    name = "hugepages.2m_per_node"
    size_kb = 2048
    boot_size = "2M"
    checker = staticmethod(int_validator(0, None))


class Hugepages1GPerNode(_HugepagesPerNode):
    """1 GiB hugepages reserved on each NUMA node
    (`/sys/devices/system/node/nodeN/hugepages/hugepages-1048576kB/nr_hugepages`).

    The kernel often cannot find 1 GiB of contiguous memory once the node has been
    up for a while; such a refusal fails the apply (rolled back) and names the boot
    parameter to use instead: `hugepagesz=1G hugepages=<node>:<count>`."""

    name = "hugepages.1g_per_node"
    size_kb = 1048576
    boot_size = "1G"
    checker = staticmethod(int_validator(0, None))
