"""The event kinds sources write into the EventStore, and what they mean.

One table, so the writers (GPU, eBPF, worker, tuning, bootstrap) and the reader
(correlation) agree. `magnitude` is in the unit given; subjects follow
agent/events.py ("cgroup:<path>" is the canonical cgroup path of agent.cgroups).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventKind:
    name: str
    subject: str  # subject form
    magnitude: str  # unit of magnitude
    meaning: str


KINDS = {
    k.name: k
    for k in (
        # eBPF (collectors/ebpf): thread-level events carry attributes tid, cpu.
        EventKind("runqueue_wait", "cgroup:<path> of the waiting thread", "seconds",
                  "A thread waited on a run queue; attributes tid, cpu, holder_pid, holder_comm."),
        EventKind("runqueue_pressure", "cgroup:<path> of the waiting threads", "seconds",
                  "All run-queue waits of a scope's threads that ended on one CPU within [start, end] "
                  "(every wait, outliers included), summed; attributes cpu, waits, aggregate=True."),
        EventKind("offcpu", "cgroup:<path>", "seconds",
                  "A thread was off CPU; attributes tid, voluntary (bool)."),
        EventKind("io_stall", "dev:<block device>", "seconds",
                  "A block request waited long from submission to completion; attributes op "
                  "(read|write|other), bytes, issuer_pid (the submitting thread), queued_seconds (before "
                  "the device had it), cgroup (when an inference thread submitted it)."),
        EventKind("io_pressure", "cgroup:<path> of the submitting threads", "seconds",
                  "All block requests a scope's threads submitted to one device that completed within "
                  "[start, end], their waits summed; attributes device, requests, reads, bytes, aggregate=True."),
        EventKind("tcp_retransmit", "node", "segments",
                  "TCP retransmission; attributes saddr, daddr, sport, dport."),
        EventKind("oom_kill", "node", "count",
                  "The OOM killer chose a victim; attributes pid, comm, cgroup."),
        EventKind("reclaim_stall", "cgroup:<path> or node", "seconds",
                  "Direct reclaim stalled an allocating thread; attributes tid."),
        # GPU (collectors/gpu)
        EventKind("gpu_throttle", "gpu:<uuid>", "seconds",
                  "A clock-event (throttle) reason was active; attributes reason."),
        EventKind("gpu_clock_drop", "gpu:<uuid>", "hertz",
                  "The SM clock fell below its recent level; magnitude is the drop."),
        EventKind("gpu_xid", "gpu:<uuid>", "count",
                  "An XID error; attributes xid, action (restart_app|reset_gpu|reboot_node|informational)."),
        EventKind("gpu_ecc", "gpu:<uuid>", "count", "An ECC error event; attributes type."),
        EventKind("gpu_lost", "gpu:<uuid>", "count", "NVML reports the GPU lost."),
        EventKind("gpu_added", "node", "count", "A GPU appeared on PCI; attributes pci_bus_id."),
        EventKind("gpu_removed", "node", "count", "A GPU disappeared from PCI; attributes pci_bus_id."),
        # Worker supervisor (agent/worker)
        EventKind("worker_start", "worker:<name>", "count", "The worker unit was started."),
        EventKind("worker_stop", "worker:<name>", "count", "The worker unit was stopped; attributes reason."),
        EventKind("worker_restart", "worker:<name>", "count", "The worker was restarted; attributes reason."),
        EventKind("worker_startup_phase", "worker:<name>", "seconds",
                  "A phase of the worker's start-up ended (from vLLM's start-up spans); attributes phase."),
        EventKind("worker_refused", "worker:<name>", "count",
                  "The worker is not restarted: vLLM rejected its command line or is too old; attributes reason."),
        # Tuning and bootstrap
        EventKind("tuning_drift", "node", "count",
                  "A tunable left its desired value; attributes tunable, target, current, desired."),
        EventKind("tuning_applied", "node", "count", "The tuning engine applied a profile; attributes profile, changed."),
        EventKind("bootstrap_change", "node", "count",
                  "A pinned component was installed or changed; attributes component, version."),
    )
}
