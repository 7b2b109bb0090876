"""The XID/ECC event thread: one NVML event set, waited on with a timeout.

NVML's event data carries no timestamp, so an event is stamped when the wait
returns it (realtime ns): at most one wait timeout after the driver queued it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.events import AttrValue, Event, EventStore, now_ns
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

OnXid = Callable[[Device, XidInfo], None]


def event_from_data(reader_uuid: str, dev: Device | None, event_type: int, event_data: int,
                    t_ns: int) -> tuple[Event | None, XidInfo | None]:
    """The EventStore event for one NVML event (pure; the thread does the I/O)."""
    subject = f"gpu:{reader_uuid}"
    gpu = {"gpu": dev.index} if dev is not None else {}
    if event_type & EVENT_XID:
        info = classify(int(event_data))
        attrs: dict[str, AttrValue] = {"xid": info.xid, "action": info.action, "description": info.description,
                                       "known": info.known, **gpu}
        return Event(t_ns, t_ns, "gpu_xid", subject, 1.0, attrs), info
    if event_type & (EVENT_DOUBLE_BIT_ECC | EVENT_SINGLE_BIT_ECC):
        etype = "double_bit" if event_type & EVENT_DOUBLE_BIT_ECC else "single_bit"
        return Event(t_ns, t_ns, "gpu_ecc", subject, 1.0, {"type": etype, **gpu}), None
    return None, None


class EventThread:
    def __init__(self, reader: NvmlReader, devices: list[Device], store: EventStore, on_xid: OnXid,
                 timeout_ms: int = 500) -> None:
        self.reader = reader
        self.by_uuid = {d.uuid: d for d in devices}
        self.devices = devices
        self.store = store
        self.on_xid = on_xid
        self.timeout_ms = timeout_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._evset: NvmlObject = None
        self.registered: list[Device] = []

    def start(self) -> bool:
        self._evset, self.registered = self.reader.event_set(self.devices)
        if self._evset is None:
            return False
        self._thread = threading.Thread(target=self._run, name="gpu-events", daemon=True)
        self._thread.start()
        return True

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

    def _run(self) -> None:
        n = self.reader.nvml
        last_error = None
        while not self._stop.is_set():
            try:
                data = self.reader.event_wait(self._evset, self.timeout_ms)
            except n.NVMLError as e:
                # GPU_IS_LOST and friends: the poller reports the device; back off here
                # so a broken event set neither spins nor floods the log.
                if e.value != last_error:
                    log.warning("nvmlEventSetWait_v2: %s", e)
                last_error = e.value
                self._stop.wait(1.0)
                continue
            last_error = None
            if data is None:
                continue
            self.handle(data)

    def handle(self, data: NvmlObject) -> None:
        try:
            uuid = self.reader.uuid_of(data.device)
        except self.reader.nvml.NVMLError as e:
            log.warning("GPU event from a device without a UUID (%s); dropped", e)
            return
        dev = self.by_uuid.get(uuid)
        ev, info = event_from_data(uuid, dev, int(data.eventType), int(data.eventData), now_ns())
        if ev is None:
            return
        self.store.add(ev)
        if info is not None and dev is not None:
            self.on_xid(dev, info)
            log.warning("GPU %d (%s) XID %d: %s; recommended action: %s",
                        dev.index, uuid, info.xid, info.description, info.action)
