"""The eBPF collector's metrics, declared once."""

from __future__ import annotations

from agent.catalog import MetricSpec, MetricType

SOURCE = "eBPF tracepoint programs (collectors/ebpf/bpf)"

EBPF_PROGRAM_UP = MetricSpec(
    "infernode_ebpf_program_up", MetricType.GAUGE,
    "Whether the eBPF program is loaded and attached (1) or off (0); infernode ebpf status says why.",
    labels=("program",), source="agent eBPF loader"
)
EBPF_EVENTS_LOST_TOTAL = MetricSpec(
    "infernode_ebpf_events_lost_total", MetricType.COUNTER,
    "Outlier events the program could not put into the full ring buffer.",
    labels=("program",), source=SOURCE
)
EBPF_SCOPE_THREADS = MetricSpec(
    "infernode_ebpf_scope_threads", MetricType.GAUGE,
    "Threads of the inference cgroups the programs currently count as scope inference.",
    source="cgroup.threads / tasks of the configured inference cgroups"
)
RUNQUEUE_LATENCY_SECONDS = MetricSpec(
    "infernode_runqueue_latency_seconds", MetricType.HISTOGRAM,
    "Time threads waited on a run queue between becoming runnable and running.",
    unit="seconds", labels=("scope",), source="sched:sched_wakeup, sched_wakeup_new, sched_switch"
)
OFFCPU_SECONDS = MetricSpec(
    "infernode_offcpu_seconds", MetricType.HISTOGRAM,
    "Time threads spent off CPU, voluntary (blocked) or involuntary (preempted).",
    unit="seconds", labels=("scope", "kind"), source="sched:sched_switch prev_state"
)
BLOCK_IO_LATENCY_SECONDS = MetricSpec(
    "infernode_block_io_latency_seconds", MetricType.HISTOGRAM,
    "Block request latency from issue to completion, per device and operation.",
    unit="seconds", labels=("device", "op"), source="block:block_rq_issue, block_rq_complete"
)
BLOCK_IO_INFERENCE_WAIT_SECONDS_TOTAL = MetricSpec(
    "infernode_block_io_inference_wait_seconds_total", MetricType.COUNTER,
    "Time block requests submitted by inference threads waited, submission to completion "
    "(queueing included), summed per device; overlapping requests each count.",
    unit="seconds", labels=("device",), source="block:block_bio_queue, block_rq_issue, block_rq_complete"
)
BLOCK_IO_INFERENCE_REQUESTS_TOTAL = MetricSpec(
    "infernode_block_io_inference_requests_total", MetricType.COUNTER,
    "Block requests submitted by inference threads that completed, per device.",
    labels=("device",), source="block:block_bio_queue, block_rq_issue, block_rq_complete"
)
TCP_RETRANSMITS_TOTAL = MetricSpec(
    "infernode_tcp_retransmits_total", MetricType.COUNTER,
    "TCP segments retransmitted by this node, by the configured local port range they were sent from.",
    labels=("local_ports",), source="tcp:tcp_retransmit_skb"
)
OOM_KILLS_TOTAL = MetricSpec(
    "infernode_oom_kills_total", MetricType.COUNTER,
    "Processes the kernel OOM killer chose as victims.", source="oom:mark_victim"
)
RECLAIM_STALLS_TOTAL = MetricSpec(
    "infernode_reclaim_stalls_total", MetricType.COUNTER,
    "Direct-reclaim episodes that stalled an allocating thread (global or cgroup-limit reclaim).",
    labels=("scope", "kind"),
    source="vmscan:mm_vmscan_direct_reclaim_begin/end, mm_vmscan_memcg_reclaim_begin/end"
)
RECLAIM_STALL_SECONDS_TOTAL = MetricSpec(
    "infernode_reclaim_stall_seconds_total", MetricType.COUNTER,
    "Time allocating threads spent in direct reclaim.", unit="seconds",
    labels=("scope", "kind"),
    source="vmscan:mm_vmscan_direct_reclaim_begin/end, mm_vmscan_memcg_reclaim_begin/end"
)
IRQ_TIME_SECONDS_TOTAL = MetricSpec(
    "infernode_irq_time_seconds_total", MetricType.COUNTER,
    "Time each CPU spent in hard or soft interrupt handlers.", unit="seconds",
    labels=("cpu", "kind"), source="irq:irq_handler_entry/exit, softirq_entry/exit"
)
SPECS = (
    EBPF_PROGRAM_UP,
    EBPF_EVENTS_LOST_TOTAL,
    EBPF_SCOPE_THREADS,
    RUNQUEUE_LATENCY_SECONDS,
    OFFCPU_SECONDS,
    BLOCK_IO_LATENCY_SECONDS,
    BLOCK_IO_INFERENCE_WAIT_SECONDS_TOTAL,
    BLOCK_IO_INFERENCE_REQUESTS_TOTAL,
    TCP_RETRANSMITS_TOTAL,
    OOM_KILLS_TOTAL,
    RECLAIM_STALLS_TOTAL,
    RECLAIM_STALL_SECONDS_TOTAL,
    IRQ_TIME_SECONDS_TOTAL,
)
