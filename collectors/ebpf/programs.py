"""The eBPF programs: which source file and tracepoints each needs.

Enabled programs are compiled together as one bcc module (clang runs once); each is
switched in by its ENABLE_* define, so one program's absence never changes another.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Program:
    name: str
    prog_id: int  # PROG_* in bpf/common.h
    source: str  # file under bpf/
    define: str
    tracepoints: tuple[str, ...]  # "category:name"


PROGRAMS: tuple[Program, ...] = (
    Program("runqueue", 0, "sched.c", "ENABLE_RUNQUEUE",
            ("sched:sched_wakeup", "sched:sched_wakeup_new", "sched:sched_switch", "sched:sched_process_fork")),
    Program("offcpu", 1, "sched.c", "ENABLE_OFFCPU", ("sched:sched_switch", "sched:sched_process_fork")),
    Program("blockio", 2, "blockio.c", "ENABLE_BLOCKIO",
            ("block:block_bio_queue", "block:block_rq_issue", "block:block_rq_complete")),
    Program("tcp_retransmit", 3, "tcp.c", "ENABLE_TCP_RETRANSMIT", ("tcp:tcp_retransmit_skb",)),
    Program("oom", 4, "oom.c", "ENABLE_OOM", ("oom:mark_victim",)),
    Program("reclaim", 5, "reclaim.c", "ENABLE_RECLAIM",
            ("vmscan:mm_vmscan_direct_reclaim_begin", "vmscan:mm_vmscan_direct_reclaim_end",
             "vmscan:mm_vmscan_memcg_reclaim_begin", "vmscan:mm_vmscan_memcg_reclaim_end")),
    Program("irq", 6, "irq.c", "ENABLE_IRQ",
            ("irq:irq_handler_entry", "irq:irq_handler_exit", "irq:softirq_entry", "irq:softirq_exit")),
)

BY_NAME = {p.name: p for p in PROGRAMS}
BY_ID = {p.prog_id: p for p in PROGRAMS}


def bpf_file(name: str) -> str:
    return resources.files("collectors.ebpf").joinpath("bpf", name).read_text()


def build_source(enabled: list[Program], defines: dict[str, int | str]) -> str:
    """One C translation unit: defines, common.h, then each needed source once."""
    lines = [f"#define {k} {v}" for k, v in sorted(defines.items())]
    lines += [f"#define {p.define} 1" for p in enabled]
    lines.append(bpf_file("common.h"))
    seen: set[str] = set()
    for p in enabled:
        if p.source not in seen:
            seen.add(p.source)
            lines.append(bpf_file(p.source))
    return "\n".join(lines)


def port_range_macro(ranges: list[tuple[int, int]]) -> str:
    """C expression mapping a port `p` to 1 + the index of the first range holding
    it, or 0: the ranges are config, compiled in as constants."""
    expr = "0"
    for i, (lo, hi) in reversed(list(enumerate(ranges))):
        expr = f"((p) >= {lo} && (p) <= {hi} ? {i + 1} : {expr})"
    return expr
