"""Where XIDs arrive, from NVML's event set and from the kernel log, and are counted
once: per GPU and XID (`infernode_gpu_xid_errors_total`), as `gpu_xid` events the
worker supervisor reacts to, and NVSwitch SXids per switch.

Both sources call in from their own threads; the counts are guarded by one lock,
and nothing here calls NVML.
"""

from __future__ import annotations

import logging
import threading
import time

from agent.events import Event, EventStore, now_ns
from agent.samples import Sample
from collectors.gpu.events import ecc_event, xid_event, xid_of
from collectors.gpu.fields import normalize_bus_id
from collectors.gpu.kmsg import SxidLine, XidLine, matches_gpu
from collectors.gpu.nvml_reader import Device
from collectors.gpu.specs import GPU_EVENTS_UNATTRIBUTED_TOTAL, GPU_XID_ERRORS_TOTAL, NVSWITCH_SXID_ERRORS_TOTAL
from collectors.gpu.xid import XidInfo, classify
from collectors.gpu.xid_dedup import XidDedup

log = logging.getLogger("infernode.collector.gpu")

NVML = "nvml"
KERNEL_LOG = "kernel_log"


class XidIntake:
    def __init__(self, devices: list[Device], store: EventStore, dedup_window: float = 10.0) -> None:
        self.devices = devices
        self._bdf = {d.uuid: normalize_bus_id(d.pci_bus_id) for d in devices}
        self.store = store
        self._lock = threading.Lock()
        self._dedup = XidDedup(dedup_window)
        self._xids: dict[str, dict[tuple[int, str], int]] = {d.uuid: {} for d in devices}
        self._sxids: dict[tuple[str, str, int, str], int] = {}
        self._unattributed: dict[str, int] = {}

    # -- sources --------------------------------------------------------------

    def on_nvml_event(self, dev: Device | None, event_type: int, event_data: int) -> None:
        if dev is None:
            self._count_unattributed(NVML)
            return
        info = xid_of(event_type, event_data)
        if info is not None:
            self._count_xid(dev, info, NVML)
            return
        ev = ecc_event(dev, event_type, now_ns())
        if ev is not None:
            self.store.add(ev)

    def on_kernel_line(self, line: XidLine | SxidLine) -> None:
        if isinstance(line, SxidLine):
            self._count_sxid(line)
            return
        dev = next((d for d in self.devices if matches_gpu(line.pci, self._bdf[d.uuid])), None)
        if dev is None:
            log.warning("XID %d at PCI %s, which is none of this node's GPUs as NVML enumerated them",
                        line.xid, line.pci)
            self._count_unattributed(KERNEL_LOG)
            return
        self._count_xid(dev, classify(line.xid), KERNEL_LOG, line.detail)

    # -- counting -------------------------------------------------------------

    def _count_xid(self, dev: Device, info: XidInfo, source: str, detail: str = "") -> None:
        t = time.monotonic()
        with self._lock:
            if self._dedup.is_duplicate((dev.uuid, info.xid), source, t):
                return
            self._dedup.prune(t)
            counts = self._xids[dev.uuid]
            key = (info.xid, info.action)
            counts[key] = counts.get(key, 0) + 1
        self.store.add(xid_event(dev, info, now_ns(), source, detail))
        log.warning("GPU %d (%s) XID %d from the %s: %s; recommended action: %s",
                    dev.index, dev.uuid, info.xid, "kernel log" if source == KERNEL_LOG else "NVML event set",
                    info.description, info.action)

    def _count_sxid(self, line: SxidLine) -> None:
        severity = "fatal" if line.fatal else "non_fatal" if line.fatal is False else "unknown"
        with self._lock:
            key = (line.switch, line.pci, line.sxid, severity)
            self._sxids[key] = self._sxids.get(key, 0) + 1
        t = now_ns()
        self.store.add(Event(t, t, "nvswitch_sxid", "node", 1.0,
                             {"switch": line.switch, "pci_bus_id": line.pci, "sxid": line.sxid,
                              "severity": severity, "detail": line.detail}))
        log.warning("NVSwitch %s (%s) SXid %d (%s): %s", line.switch, line.pci, line.sxid, severity, line.detail)

    def _count_unattributed(self, source: str) -> None:
        with self._lock:
            self._unattributed[source] = self._unattributed.get(source, 0) + 1

    # -- exposition -------------------------------------------------------------

    def samples(self) -> list[Sample]:
        with self._lock:
            xids = {u: dict(c) for u, c in self._xids.items()}
            sxids = dict(self._sxids)
            unattributed = dict(self._unattributed)
        out = []
        for dev in self.devices:
            for (xid, action), n in sorted(xids[dev.uuid].items()):
                out.append(GPU_XID_ERRORS_TOTAL.emit({**dev.labels, "xid": str(xid), "action": action}, float(n)))
        for (switch, pci, sxid, severity), n in sorted(sxids.items()):
            out.append(NVSWITCH_SXID_ERRORS_TOTAL.emit(
                {"switch": switch, "pci_bus_id": pci, "sxid": str(sxid), "severity": severity}, float(n)))
        for source in (NVML, KERNEL_LOG):
            out.append(GPU_EVENTS_UNATTRIBUTED_TOTAL.emit({"source": source}, float(unattributed.get(source, 0))))
        return out
