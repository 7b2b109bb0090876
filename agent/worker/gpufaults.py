"""GPU faults that end a worker: the GPU fell off the bus, lost its memory's integrity,
or NVIDIA's recovery action says drain or reboot.

XID 79 (fallen off the bus: reboot the node) and 95 (uncontained ECC: reset the
GPU) leave the GPU unusable until someone acts; restarting vLLM on it would only
crash again. Application XIDs (13, 31, 43, ...) are the worker's own fault and
are handled by its health checks like any other crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from agent.events import Event

FATAL_XIDS = frozenset({79, 95})
# NVIDIA's recovery actions (collectors/gpu/fields.py) that take the GPU out of
# service until someone drains or reboots: treated as XID 79 is.
FATAL_RECOVERY_ACTIONS = frozenset({"node_reboot", "system_reboot", "drain_p2p", "drain_and_reset"})
KINDS = ("gpu_lost", "gpu_xid", "gpu_recovery_action")


def fault_reason(ev: Event) -> str | None:
    if ev.kind == "gpu_lost":
        return "gpu_lost"
    if ev.kind == "gpu_xid":
        try:
            xid = int(ev.attributes.get("xid", -1))
        except (TypeError, ValueError):
            return None
        if xid in FATAL_XIDS:
            return f"xid_{xid}"
    if ev.kind == "gpu_recovery_action":
        action = str(ev.attributes.get("action", ""))
        if action in FATAL_RECOVERY_ACTIONS:
            return f"recovery_{action}"
    return None


def gpu_index(ev: Event, addresses: Sequence[str], index_of_uuid: Callable[[str], int | None] | None) -> int | None:
    """The GPU's index (CUDA_VISIBLE_DEVICES numbering), or None when the event does not tell."""
    attrs: Mapping[str, object] = ev.attributes
    index = attrs.get("index")
    if isinstance(index, int):
        return index
    bdf = str(attrs.get("pci_bus_id", "")).lower()
    if bdf:
        # NVML writes 00000000:18:00.0, sysfs 0000:18:00.0
        short = bdf[-12:]
        for i, a in enumerate(addresses):
            if a.lower().endswith(short):
                return i
    if index_of_uuid is not None and ev.subject.startswith("gpu:"):
        return index_of_uuid(ev.subject[len("gpu:"):])
    return None


def worker_fault(
    events: Iterable[Event],
    worker_gpus: Sequence[int],
    addresses: Sequence[str],
    index_of_uuid: Callable[[str], int | None] | None = None,
) -> str | None:
    """The reason to stop a worker on these GPUs, or None. A fatal event whose GPU
    cannot be resolved stops every GPU worker: it is safer to idle a healthy GPU
    than to restart a worker onto a dead one."""
    if not worker_gpus:
        return None
    for ev in events:
        reason = fault_reason(ev)
        if reason is None:
            continue
        idx = gpu_index(ev, addresses, index_of_uuid)
        if idx is None or idx in worker_gpus:
            return reason
    return None


def node_fault(events: Iterable[Event]) -> str | None:
    for ev in events:
        reason = fault_reason(ev)
        if reason:
            return reason
    return None
