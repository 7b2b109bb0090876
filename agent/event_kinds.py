"""The event kinds sources write into the EventStore: the one catalog of what each
means and how `infernode explain` uses it, checked like the metric catalog.

`EventStore.add` refuses a kind not declared here, a test checks that every kind
has a writer and a rule below, and docs/events.md is generated from it. Adding a
kind is one row here plus its writer.

A kind's role says what correlation does with an event of it that overlaps a
request (agent/tracing/ranking.py):

- DURATION: explains time, the union of its events' intervals clipped to the
  request; `group_by` names the attribute ("subject" for the subject) that
  separates one cause from another of the kind.
- AGGREGATE: a kernel sum over a window; explains time for the duration kind
  `cause`, its waits spread over the window; the outliers of that kind inside
  stay as evidence and are not counted again.
- INSTANT: a moment with no duration to apportion, named beside the timed
  causes (`severe` ones first); grouped by subject.
- CONTEXT: a state or change of the node, true of every request until it changes,
  so it explains none; listed as context in the words of `context` (attributes
  in braces, "?" for one the event lacks).
- RECORD: what happened, kept for its own readers (the worker supervisor, the
  event log, the client-delay estimate of agent/tracing/delivery.py), never a
  cause or context of a request; listed among a request's events when it
  overlaps one.
- ENGINE: the engine's own state over a window, scraped from vLLM's /metrics
  (agent/worker/engine_windows.py); never a cause on its own, read by the engine
  causes and listed among the request's events.
- DERIVED: a cause the correlator derives from the worker's load timeline and
  the ENGINE windows (agent/tracing/engine_causes.py); never stored as an event.
  `estimated` says whether its time is a model's estimate or directly measured.

An event whose subject is `node` concerns a request only by its kind's `on_node`
rule: "all" (every request on the node: the node's states), "port" (a request on
the worker's port, or every request when either side's port is unknown), "victim"
(a request of the victim's cgroup, or every request when the victim is unknown),
or "" (none: a thread's own wait or stall is its cgroup's, never the node's).

`magnitude` is in the unit given; subjects follow agent/events.py ("cgroup:<path>"
is the canonical cgroup path of agent.cgroups).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class Role(Enum):
    DURATION = "duration"
    AGGREGATE = "aggregate"
    INSTANT = "instant"
    CONTEXT = "context"
    RECORD = "record"
    ENGINE = "engine"
    DERIVED = "derived"


@dataclass(frozen=True)
class EventKind:
    name: str
    subject: str  # subject form
    magnitude: str  # unit of magnitude
    meaning: str
    role: Role
    label: str = ""  # how a cause of this kind is named (DURATION, INSTANT)
    group_by: str = "subject"  # DURATION: the attribute that keys one cause
    cause: str = ""  # AGGREGATE: the DURATION kind whose time it sums
    severe: bool = False  # INSTANT: listed before the others
    context: str = ""  # CONTEXT: its wording
    on_node: str = ""  # which requests an event of this kind with subject `node` concerns
    estimated: bool = False  # DERIVED: its time is a model's estimate, not a measurement

    def context_text(self, attributes: Mapping[str, object]) -> str:
        return string.Formatter().vformat(self.context, (), _Missing(attributes)).strip()


class _Missing(dict[str, object]):
    def __init__(self, attributes: Mapping[str, object]) -> None:
        super().__init__(attributes)

    def __missing__(self, key: str) -> str:
        return "?"


KINDS: dict[str, EventKind] = {
    k.name: k
    for k in (
        # eBPF (collectors/ebpf): thread-level events carry attributes tid, cpu.
        EventKind("runqueue_wait", "cgroup:<path> of the waiting thread", "seconds",
                  "A thread waited on a run queue; attributes tid, cpu, holder_pid, holder_comm (the thread "
                  "that held the CPU), holder_process_pid, holder_process_comm (its process, when procfs "
                  "still had it).",
                  Role.DURATION, "run-queue wait", group_by="cpu"),
        EventKind("runqueue_pressure", "cgroup:<path> of the waiting threads", "seconds",
                  "All run-queue waits of a scope's threads that ended on one CPU within [start, end] "
                  "(every wait, outliers included), summed; attributes cpu, waits, aggregate=True.",
                  Role.AGGREGATE, cause="runqueue_wait"),
        EventKind("io_stall", "dev:<block device>", "seconds",
                  "A block request waited long from submission to completion; attributes op "
                  "(read|write|other), bytes, issuer_pid (the submitting thread), queued_seconds (before "
                  "the device had it), cgroup (when an inference thread submitted it).",
                  Role.DURATION, "I/O stall"),
        EventKind("io_pressure", "cgroup:<path> of the submitting threads", "seconds",
                  "All block requests a scope's threads submitted to one device that completed within "
                  "[start, end], their waits summed; attributes device, requests, reads, bytes, aggregate=True.",
                  Role.AGGREGATE, cause="io_stall"),
        EventKind("tcp_retransmit", "node", "segments",
                  "TCP retransmission; attributes saddr, daddr, sport, dport, ca_state (the socket's "
                  "congestion state: loss after a retransmission timeout, recovery for a fast "
                  "retransmit, open for a loss probe). The client's delay it implies lies outside the "
                  "span and is estimated apart (agent/tracing/delivery.py).",
                  Role.RECORD, on_node="port"),
        EventKind("oom_kill", "node", "count",
                  "The OOM killer chose a victim; attributes pid, comm, cgroup.",
                  Role.INSTANT, "OOM kill", severe=True, on_node="victim"),
        EventKind("reclaim_stall", "cgroup:<path> of the stalled thread (thread:<tid> when it is gone)", "seconds",
                  "Reclaim stalled an allocating thread: global direct reclaim (kind direct) or its "
                  "cgroup's limit (kind memcg); attributes tid, comm, kind, cgroup.",
                  Role.DURATION, "reclaim stall", group_by="kind"),
        EventKind("reclaim_pressure", "cgroup:<path> of the stalled threads", "seconds",
                  "All reclaim stalls of a scope's threads of one kind (direct, memcg) within [start, end], "
                  "the ones still in progress included, summed; attributes kind, stalls (ended in the "
                  "window), cgroup, aggregate=True.",
                  Role.AGGREGATE, cause="reclaim_stall"),
        # GPU (collectors/gpu)
        EventKind("gpu_throttle", "gpu:<uuid>", "seconds",
                  "A clock-event (throttle) reason was active; attributes reason.",
                  Role.DURATION, "GPU throttled", group_by="reason"),
        EventKind("gpu_clock_drop", "gpu:<uuid>", "hertz",
                  "The SM clock fell below its recent level; magnitude is the drop.",
                  Role.DURATION, "GPU clock drop"),
        EventKind("gpu_xid", "gpu:<uuid>", "count",
                  "An XID error, from NVML's event set or the kernel log (counted once); attributes xid, "
                  "action (restart_app|reset_gpu|reboot_node|informational), gpu, pci_bus_id, source "
                  "(nvml|kernel_log), detail (kernel log only).",
                  Role.INSTANT, "GPU XID error", severe=True),
        EventKind("nvswitch_sxid", "node", "count",
                  "An NVSwitch SXid error in the kernel log; attributes switch, pci_bus_id, sxid, "
                  "severity (fatal|non_fatal|unknown), detail.",
                  Role.INSTANT, "NVSwitch SXid error", severe=True, on_node="all"),
        EventKind("gpu_recovery_action", "gpu:<uuid>", "count",
                  "NVIDIA's recommended recovery for the GPU changed (field GET_GPU_RECOVERY_ACTION, XID 154); "
                  "attributes action (none|gpu_reset|node_reboot|drain_p2p|drain_and_reset|...), previous, "
                  "gpu, pci_bus_id.",
                  Role.INSTANT, "GPU recovery action", severe=True),
        EventKind("gpu_ecc", "gpu:<uuid>", "count", "An ECC error event; attributes type.",
                  Role.INSTANT, "GPU ECC error"),
        EventKind("gpu_lost", "gpu:<uuid>", "count", "NVML reports the GPU lost.",
                  Role.INSTANT, "GPU lost", severe=True),
        EventKind("gpu_added", "node", "count", "A GPU appeared on PCI; attributes pci_bus_id.",
                  Role.CONTEXT, context="gpu added {pci_bus_id}", on_node="all"),
        EventKind("gpu_removed", "node", "count", "A GPU disappeared from PCI; attributes pci_bus_id.",
                  Role.CONTEXT, context="gpu removed {pci_bus_id}", on_node="all"),
        # Worker supervisor (agent/worker)
        EventKind("worker_start", "worker:<name>", "count", "The worker unit was started.",
                  Role.INSTANT, "worker started"),
        EventKind("worker_stop", "worker:<name>", "count", "The worker unit was stopped; attributes reason.",
                  Role.INSTANT, "worker stopped"),
        EventKind("worker_restart", "worker:<name>", "count", "The worker was restarted; attributes reason.",
                  Role.INSTANT, "worker restarted", severe=True),
        EventKind("worker_startup_phase", "worker:<name>", "seconds",
                  "A phase of the worker's start-up ended (from vLLM's start-up spans); attributes phase.",
                  Role.RECORD),  # the worker serves no request while it starts
        EventKind("worker_refused", "worker:<name>", "count",
                  "The worker is not restarted: vLLM rejected its command line or is too old; attributes reason.",
                  Role.RECORD),  # a refused worker serves no request
        EventKind("node_cordon", "node", "count",
                  "An operator cordoned the node: every worker out of rotation, still running; attributes reason.",
                  Role.RECORD),  # the node serves no traffic meanwhile
        EventKind("node_uncordon", "node", "count",
                  "The cordon was lifted: serving workers back in rotation; attributes reason (the cordon's).",
                  Role.RECORD),
        # vLLM's own gauges and counters, one window per scrape (agent/worker/engine_windows.py)
        EventKind("engine_load", "worker:<name>", "requests",
                  "The engine was busy over a scrape window: the gauges at its end; magnitude is the requests "
                  "waiting; attributes running, waiting, kv_cache_usage (0-1), waiting_capacity and "
                  "waiting_deferred (when vLLM exports vllm:num_requests_waiting_by_reason).",
                  Role.ENGINE),
        EventKind("engine_preemption", "worker:<name>", "count",
                  "vLLM preempted requests in a scrape window (vllm:num_preemptions_total went up by magnitude).",
                  Role.ENGINE),
        EventKind("engine_rejection", "worker:<name>", "count",
                  "vLLM turned requests away at admission in a scrape window (vllm:admission_rejections_total "
                  "went up by magnitude, answered 503); attributes reason.",
                  Role.CONTEXT, context="vLLM turned away requests at admission ({reason})"),
        # The engine's causes, derived by the correlator (agent/tracing/engine_causes.py)
        EventKind("queueing", "worker:<name>", "seconds",
                  "The request queued while others ran: its queue time, with the requests running and ahead.",
                  Role.DERIVED, "queued"),
        EventKind("kv_cache_pressure", "worker:<name>", "seconds",
                  "The request queued while vLLM's KV cache was nearly full (explain.engine.kv_full).",
                  Role.DERIVED, "queued on a full KV cache"),
        EventKind("preemption", "worker:<name>", "seconds",
                  "The request's decode fell behind its batch-mates' pace: preempted and recomputed.",
                  Role.DERIVED, "preempted", estimated=True),
        EventKind("batch_interference", "worker:<name>", "seconds",
                  "The request's decode was slower than the worker's unloaded pace while other requests "
                  "prefilled or filled the batch.",
                  Role.DERIVED, "batch interference", estimated=True),
        EventKind("long_prompt", "worker:<name>", "seconds",
                  "The request's own prompt is long for its worker: prefill time above a typical prompt's.",
                  Role.DERIVED, "long prompt", estimated=True),
        # Tuning and bootstrap
        EventKind("tuning_drift", "node", "count",
                  "A tunable was away from its desired value from its detection to its repair (open, state=open, "
                  "while it still is); attributes tunable, target, current, desired.",
                  Role.CONTEXT, context="tuning drift: {tunable} is {current}, wanted {desired}", on_node="all"),
        EventKind("tuning_applied", "node", "count", "The tuning engine applied a profile; attributes profile, changed.",
                  Role.CONTEXT, context="tuning profile {profile} applied", on_node="all"),
        EventKind("bootstrap_change", "node", "count",
                  "A pinned component was installed or changed; attributes component, version.",
                  Role.CONTEXT, context="{component} changed to {version}", on_node="all"),
    )
}


class UndeclaredEventKind(ValueError):
    """An event of a kind this catalog does not declare."""


def lint(kinds: Mapping[str, EventKind] = KINDS) -> list[str]:
    """Problems with the catalog itself: each role's fields set, and only those."""
    out = []
    for k in kinds.values():
        if k.role in (Role.DURATION, Role.INSTANT, Role.DERIVED) and not k.label:
            out.append(f"{k.name}: a {k.role.value} kind needs a label")
        if k.role is Role.AGGREGATE and kinds.get(k.cause, None) is None:
            out.append(f"{k.name}: aggregate of an undeclared kind {k.cause!r}")
        elif k.role is Role.AGGREGATE and kinds[k.cause].role is not Role.DURATION:
            out.append(f"{k.name}: aggregate of {k.cause!r}, which is not a duration kind")
        if k.role is Role.CONTEXT and not k.context:
            out.append(f"{k.name}: a context kind needs its wording")
        if k.role is not Role.CONTEXT and k.context:
            out.append(f"{k.name}: only context kinds have context wording")
        if k.severe and k.role is not Role.INSTANT:
            out.append(f"{k.name}: only instants are severe")
        if k.group_by != "subject" and k.role is not Role.DURATION:
            out.append(f"{k.name}: only duration kinds group by an attribute")
        if k.estimated and k.role is not Role.DERIVED:
            out.append(f"{k.name}: only derived causes are estimated")
        if k.on_node not in ("", "all", "port", "victim"):
            out.append(f"{k.name}: unknown on_node rule {k.on_node!r}")
    return out
