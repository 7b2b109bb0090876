"""The NVML event thread: one event set (XID and ECC events), waited on with a timeout.

NVML's event data carries no timestamp, so an event is stamped when the wait
returns it (realtime ns): at most one wait timeout after the driver queued it.

An event's GPU is found by its handle's address, with no NVML call: the handle
is the one discovery returned, and a GPU that just raised XID 79 may no longer
answer nvmlDeviceGetUUID (shared/reference/nvml-dcgm.md, D3). When waiting keeps
failing (a registered GPU was lost), the set is rebuilt without the GPUs that no
longer register, so the others' events keep flowing.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable

from agent.events import AttrValue, Event
from agent.untyped import NvmlObject
from collectors.gpu.nvml_reader import (
    EVENT_DOUBLE_BIT_ECC,
    EVENT_SINGLE_BIT_ECC,
    EVENT_XID,
    Device,
    NvmlReader,
)
from collectors.gpu.xid import XidInfo, classify

log = logging.getLogger("infernode.collector.gpu")

# (device or None when the handle is not one discovery returned, event type, event data)
OnEvent = Callable[[Device | None, int, int], None]
REBUILD_AFTER_ERRORS = 3


def handle_address(handle: NvmlObject) -> int:
    return ctypes.cast(handle, ctypes.c_void_p).value or 0


def xid_event(dev: Device, info: XidInfo, t_ns: int, source: str, detail: str = "") -> Event:
    attrs: dict[str, AttrValue] = {"xid": info.xid, "action": info.action, "description": info.description,
                                   "known": info.known, "gpu": dev.index, "pci_bus_id": dev.pci_bus_id,
                                   "source": source}
    if detail:
        attrs["detail"] = detail
    return Event(t_ns, t_ns, "gpu_xid", f"gpu:{dev.uuid}", 1.0, attrs)


def ecc_event(dev: Device, event_type: int, t_ns: int) -> Event | None:
    if not event_type & (EVENT_DOUBLE_BIT_ECC | EVENT_SINGLE_BIT_ECC):
        return None
    etype = "double_bit" if event_type & EVENT_DOUBLE_BIT_ECC else "single_bit"
    return Event(t_ns, t_ns, "gpu_ecc", f"gpu:{dev.uuid}", 1.0, {"type": etype, "gpu": dev.index})


def xid_of(event_type: int, event_data: int) -> XidInfo | None:
    return classify(int(event_data)) if event_type & EVENT_XID else None


class EventThread:
    def __init__(self, reader: NvmlReader, devices: list[Device], on_event: OnEvent,
                 timeout_ms: int = 500, retry_interval: float = 1.0) -> None:
        self.reader = reader
        self.devices = devices
        self.by_address = {handle_address(d.handle): d for d in devices}
        self.on_event = on_event
        self.timeout_ms = timeout_ms
        self.retry_interval = retry_interval
        self.flowing = False  # the last wait returned (an event or its timeout), not an error
        self.rebuilds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._evset: NvmlObject = None
        self.registered: list[Device] = []

    def start(self) -> bool:
        self._evset, self.registered = self.reader.event_set(self.devices)
        if self._evset is None:
            return False
        self.flowing = True
        self._thread = threading.Thread(target=self._run, name="gpu-events", daemon=True)
        self._thread.start()
        return True

    @property
    def up(self) -> bool:
        return self.flowing and self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_ms / 1000 + 1)
            if self._thread.is_alive():
                log.warning("GPU event thread did not stop; leaving its event set allocated")
                return
        if self._evset is not None:
            self.reader.event_set_free(self._evset)
            self._evset = None

    def _rebuild(self) -> None:
        if self._evset is not None:
            self.reader.event_set_free(self._evset)
            self._evset = None
        evset, registered = self.reader.event_set(self.devices)
        self.rebuilds += 1
        gone = sorted({d.index for d in self.registered} - {d.index for d in registered})
        self._evset, self.registered = evset, registered
        log.warning("GPU event set rebuilt on %d GPU(s)%s", len(registered),
                    f"; GPU(s) {', '.join(map(str, gone))} no longer register" if gone else "")

    def _run(self) -> None:
        n = self.reader.nvml
        last_error = None
        errors = 0
        while not self._stop.is_set():
            if self._evset is None:
                self._stop.wait(5 * self.retry_interval)
                if not self._stop.is_set():
                    self._rebuild()
                continue
            try:
                data = self.reader.event_wait(self._evset, self.timeout_ms)
            except n.NVMLError as e:
                # GPU_IS_LOST and friends: back off so a broken set neither spins nor
                # floods the log, and rebuild it once the error persists.
                self.flowing = False
                if e.value != last_error:
                    log.warning("nvmlEventSetWait_v2: %s", e)
                last_error = e.value
                errors += 1
                if errors >= REBUILD_AFTER_ERRORS:
                    errors = 0
                    self._rebuild()
                self._stop.wait(self.retry_interval)
                continue
            last_error, errors, self.flowing = None, 0, True
            if data is not None:
                self.handle(data)

    def handle(self, data: NvmlObject) -> None:
        dev = self.by_address.get(handle_address(data.device))
        if dev is None:
            log.warning("GPU event (type %#x, data %d) from a handle discovery did not return; not attributed",
                        int(data.eventType), int(data.eventData))
        self.on_event(dev, int(data.eventType), int(data.eventData))
