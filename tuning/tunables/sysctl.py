"""Kernel sysctls under /proc/sys (vm, kernel, net); one tunable per key.

Network sysctls are per network namespace: the engine tunes the namespace it runs in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tuning.desired import Desired
from tuning.tunable import Tunable, Unsupported, int_validator, read_file, write_file


class Sysctl(Tunable):
    key = ""

    def targets(self) -> list[str]:
        return ["system"]

    def _path(self) -> Path:
        return self.ctx.paths.proc("sys", *self.key.split("."))

    def read(self, target: str) -> str:
        # The kernel separates fields of vectors (tcp_rmem) with tabs; compare on words.
        value = " ".join(read_file(self._path()).split())
        # Mode 0444: the kernel will refuse every writer, root included (net.core.rmem_max
        # seen from a child network namespace is the init namespace's, read-only).
        if self._path().stat().st_mode & 0o222 == 0:
            raise Unsupported(f"{self.key} is read-only here (current {value})")
        return value

    def snapshot(self, target: str) -> str:
        return read_file(self._path())

    def write(self, target: str, value: str) -> None:
        write_file(self._path(), value)


def _triple(d: Desired) -> str | None:
    if d.kind != "fields" or len(d.fields) != 3:
        return f"three fields: min default max, e.g. '4096 131072 >=16777216' (got {d.text!r})"
    for f in d.fields:
        if int_validator(0, None)(f):
            return f"three integers (each may be >=N or <=N) (got {d.text!r})"
    return None


def _sysctl(key: str, family: str, check: Callable[[Desired], str | None], doc: str) -> type[Sysctl]:
    cls = type(
        "Sysctl_" + key.replace(".", "_"),
        (Sysctl,),
        {"name": key, "key": key, "family": family, "checker": staticmethod(check), "__doc__": doc},
    )
    return cls


SYSCTLS: tuple[type[Sysctl], ...] = (
    # Kernel housekeeping kept off the inference CPUs (tuned's cpu-partitioning).
    _sysctl("kernel.timer_migration", "isolation", int_validator(0, 1),
            "`kernel.timer_migration`: 0 keeps a timer on the CPU that armed it instead of "
            "moving it to a busy CPU, so housekeeping timers do not land on inference CPUs "
            "(cpu-partitioning sets 0)."),
    _sysctl("vm.stat_interval", "isolation", int_validator(1, None),
            "`vm.stat_interval`: seconds between the per-CPU VM statistics updates; 10 instead of "
            "1 wakes every CPU, inference ones included, a tenth as often (cpu-partitioning sets 10)."),
    _sysctl("kernel.nmi_watchdog", "isolation", int_validator(0, 1),
            "`kernel.nmi_watchdog`: 0 stops the hard-lockup detector's periodic NMI on every CPU, "
            "which interrupts inference threads (cpu-partitioning sets 0; the soft-lockup "
            "detector stays)."),
    _sysctl("kernel.hung_task_timeout_secs", "isolation", int_validator(0, None),
            "`kernel.hung_task_timeout_secs`: seconds a task may stay in D state before the kernel "
            "warns; 600, as cpu-partitioning, because a loaded inference node blocks tasks on I/O "
            "(model loads from network storage) for longer than the default 120 without a hang."),
    _sysctl("vm.swappiness", "memory", int_validator(0, 200),
            "`vm.swappiness`: low, so model weights and the KV-cache host mirror stay in RAM "
            "rather than being swapped to make room for page cache."),
    _sysctl("vm.dirty_ratio", "memory", int_validator(0, 100),
            "`vm.dirty_ratio`: percent of memory that may be dirty before writers block; "
            "low keeps checkpoint or log writes from building a multi-second flush stall."),
    _sysctl("vm.dirty_background_ratio", "memory", int_validator(0, 100),
            "`vm.dirty_background_ratio`: percent of dirty memory at which background writeback "
            "starts; low starts it early and in small pieces."),
    _sysctl("vm.zone_reclaim_mode", "memory", int_validator(0, 7),
            "`vm.zone_reclaim_mode`: 0, so an allocation spills to the other node instead of "
            "reclaiming page cache on the local one (a latency stall); placement is done by pinning."),
    _sysctl("kernel.numa_balancing", "memory", int_validator(0, 3),
            "`kernel.numa_balancing`: 0, because workers are pinned to their GPUs' node and "
            "automatic balancing would only add hinting page faults and migrations."),
    _sysctl("net.core.somaxconn", "network", int_validator(1, None),
            "`net.core.somaxconn`: listen backlog cap, so request bursts to the inference "
            "server are queued, not refused."),
    _sysctl("net.core.rmem_max", "network", int_validator(1, None),
            "`net.core.rmem_max`: largest receive buffer a socket may ask for (bytes); room for "
            "large prompt uploads and NCCL/collective traffic over TCP."),
    _sysctl("net.core.wmem_max", "network", int_validator(1, None),
            "`net.core.wmem_max`: largest send buffer a socket may ask for (bytes)."),
    _sysctl("net.core.netdev_max_backlog", "network", int_validator(1, None),
            "`net.core.netdev_max_backlog`: packets queued per CPU when the NIC delivers faster "
            "than the stack drains; larger avoids drops on 100G links."),
    _sysctl("net.core.busy_read", "network", int_validator(0, None),
            "`net.core.busy_read`: microseconds a blocking socket read busy-polls the NIC queue "
            "before sleeping; trades CPU for receive latency."),
    _sysctl("net.core.busy_poll", "network", int_validator(0, None),
            "`net.core.busy_poll`: microseconds poll/select busy-poll; as busy_read for event loops."),
    _sysctl("net.ipv4.tcp_rmem", "network", _triple,
            "`net.ipv4.tcp_rmem`: TCP receive buffer min, default, max (bytes); the max bounds "
            "autotuning on long fat links."),
    _sysctl("net.ipv4.tcp_wmem", "network", _triple,
            "`net.ipv4.tcp_wmem`: TCP send buffer min, default, max (bytes); streaming responses "
            "to many clients."),
    _sysctl("net.ipv4.tcp_fastopen", "network", int_validator(0, 0x7FF),
            "`net.ipv4.tcp_fastopen`: 3 enables TFO for clients and servers, saving a round "
            "trip on repeat connections."),
)
