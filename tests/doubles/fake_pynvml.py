"""FakePynvml: a test double for the `pynvml` module (nvidia-ml-py), for hosts
without an NVIDIA GPU.

It implements exactly the pynvml functions infernode calls, with pynvml's
signatures, and returns pynvml's own types: the ctypes structures
(c_nvmlMemory_v2_t, nvmlPciInfo_t, c_nvmlFieldValue_t, c_nvmlEventData_t,
c_nvmlGpmMetricsGet_t ...), c_nvmlDevice_t handles, friendly process objects,
and raises pynvml's NVMLError subclasses (`.value` is the code). Constants,
structure types and exception classes are taken from the real module (importing
pynvml loads no library; only nvmlInit does), so they cannot drift. A pynvml
function the double does not implement raises AttributeError instead of reaching
the real library.

A JSON scenario (tests/doubles/nvml_scenarios/*.json) describes the node; its
"timeline" lists changes per step, applied by advance(): new values ("set"),
a GPU lost ("lost"), events for nvmlEventSetWait_v2 ("event").
"""

from __future__ import annotations

import copy
import ctypes
import json
import threading
import time
import types
from collections import Counter
from pathlib import Path
from typing import Any

import pynvml as _real

SCENARIOS = Path(__file__).with_name("nvml_scenarios")

_EVENT_TYPES = {
    "xid": _real.nvmlEventTypeXidCriticalError,
    "double_bit_ecc": _real.nvmlEventTypeDoubleBitEccError,
    "single_bit_ecc": _real.nvmlEventTypeSingleBitEccError,
}
_DEFAULT_FIELD_TYPE = _real.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
_UNION_MEMBER = {
    _real.NVML_VALUE_TYPE_DOUBLE: "dVal",
    _real.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
    _real.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
    _real.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
    _real.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
    _real.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    _real.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
}
# "the DCGM version can't report XID 79, 119, and 120 due to limitations in the
# NVML library" (NVIDIA/DCGM#162; shared/reference/nvml-dcgm.md, D3): the event set
# delivers none of them.
NVML_UNDELIVERED_XIDS = frozenset({79, 119, 120})
NVLINK_DATA_FIELDS = (_real.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, _real.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX)
NVLINK_SCOPE_ALL_LINKS = 0xFFFFFFFF
_HANDLE_BASE = 0x7F0000001000
_EVENTSET_BASE = 0x7F0000800000
_MIG_BASE = 0x7F0002000000  # MIG device handles: + GPU index * 0x100 + slot
# In MIG mode the parent GPU's utilization and GPM samples are not supported
# (dcgm-exporter maintainers in #430 and #50; shared/reference/nvml-dcgm.md D8).
MIG_PARENT_UNSUPPORTED = frozenset({"nvmlDeviceGetUtilizationRates", "nvmlGpmSampleGet"})
_GPM_BASE = 0x7F0001000000


def _err(code: int) -> _real.NVMLError:
    return _real.NVMLError(code)


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


def _cpulist(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _addr(p: Any) -> int:
    return ctypes.cast(p, ctypes.c_void_p).value or 0


class _AbsentInRelease:
    """A name an older nvidia-ml-py release does not have: reading it raises
    AttributeError, as reading it from that module would."""

    def __init__(self, name: str, release: str) -> None:
        self.name, self.release = name, release

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        raise AttributeError(f"module 'pynvml' ({self.release}) has no attribute '{self.name}'")


# Names missing from older bindings, from installing each release and listing its
# module (shared/reference/nvml-dcgm.md, D1): 12.535-12.560 have no
# nvmlDeviceGetTemperatureV or nvmlTemperature_v1; 12.535 also lacks
# nvmlDeviceGetNumaNodeId and NVMLLibraryMismatchError. What else differs between
# those releases is not recorded there, so the double removes only these.
OLDER_RELEASES: dict[str, tuple[str, ...]] = {
    "12.535.161": ("nvmlDeviceGetTemperatureV", "nvmlTemperature_v1", "nvmlDeviceGetNumaNodeId",
                   "NVMLLibraryMismatchError"),
    "12.550.89": ("nvmlDeviceGetTemperatureV", "nvmlTemperature_v1"),
    "12.560.30": ("nvmlDeviceGetTemperatureV", "nvmlTemperature_v1"),
}


class FakePynvml:
    """Stands in for the pynvml module object: pass it where pynvml is injectable."""

    # Names this double's module surface lacks (see `of_release`).
    ABSENT: frozenset[str] = frozenset()

    def __init__(self, scenario: dict[str, Any]) -> None:
        self.scenario = copy.deepcopy(scenario)
        self.devices: list[dict[str, Any]] = self.scenario.get("devices", [])
        self.step = 0
        self._created = time.monotonic()
        self.refcount = 0
        self.calls: Counter[str] = Counter()
        self._cond = threading.Condition()
        # NVML is documented thread-safe: the collector reads each GPU on its own thread.
        self._alloc_lock = threading.Lock()
        self._events: dict[int, list[Any]] = {}  # event set address -> queued c_nvmlEventData_t
        self._registered: dict[int, dict[int, int]] = {}  # event set -> device index -> mask
        self._gpm_samples: dict[int, dict[str, float] | None] = {}
        self._next_gpm = _GPM_BASE
        self._next_set = _EVENTSET_BASE

    @classmethod
    def load(cls, name: str) -> FakePynvml:
        return cls(json.loads((SCENARIOS / f"{name}.json").read_text()))

    @classmethod
    def of_release(cls, release: str, scenario: dict[str, Any]) -> FakePynvml:
        """The double as an older nvidia-ml-py release presents itself: the names
        OLDER_RELEASES lists for it are not there."""
        absent = OLDER_RELEASES[release]
        sub = type(f"FakePynvml_{release.replace('.', '_')}", (cls,),
                   {"ABSENT": frozenset(absent), **{n: _AbsentInRelease(n, release) for n in absent}})
        return sub(scenario)

    def __getattr__(self, name: str) -> Any:
        if name in type(self).ABSENT:
            raise AttributeError(f"module 'pynvml' has no attribute '{name}'")
        value = getattr(_real, name)
        if isinstance(value, types.FunctionType):
            raise AttributeError(f"the NVML test double does not implement pynvml.{name}")
        return value

    # -- scenario control (test side) -------------------------------------------

    def advance(self) -> int:
        """Apply the next timeline step; returns its number."""
        self.step += 1
        with self._cond:
            for change in self.scenario.get("timeline", []):
                if change["step"] != self.step:
                    continue
                dev = self.devices[change["device"]]
                if "set" in change:
                    _merge(dev, change["set"])
                if change.get("lost"):
                    dev["lost"] = True
                if "event" in change:
                    self._queue_event(change["device"], change["event"])
            self._cond.notify_all()
        return self.step

    @property
    def live_gpm_samples(self) -> int:
        return len(self._gpm_samples)

    @property
    def live_event_sets(self) -> int:
        return len(self._events)

    def _queue_event(self, index: int, ev: dict[str, Any]) -> None:
        etype = _EVENT_TYPES[ev["type"]]
        if etype == _real.nvmlEventTypeXidCriticalError and int(ev.get("data", 0)) in NVML_UNDELIVERED_XIDS:
            return  # the driver logs it (kernel log); NVML's event set never sees it
        for addr, regs in self._registered.items():
            if regs.get(index, 0) & etype:
                data = _real.c_nvmlEventData_t()
                data.device = self._handle(index)
                data.eventType = etype
                data.eventData = int(ev.get("data", 0))
                self._events[addr].append(data)

    # -- plumbing ------------------------------------------------------------------

    def _called(self, fn: str) -> None:
        with self._alloc_lock:
            self.calls[fn] += 1
        if self.refcount <= 0:
            raise _err(_real.NVML_ERROR_UNINITIALIZED)

    def _handle(self, index: int) -> Any:
        return ctypes.cast(ctypes.c_void_p(_HANDLE_BASE + index * 0x100), _real.c_nvmlDevice_t)

    def _dev(self, handle: Any, fn: str) -> dict[str, Any]:
        self._called(fn)
        index, rem = divmod(_addr(handle) - _HANDLE_BASE, 0x100)
        if rem or not 0 <= index < len(self.devices):
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        dev = self.devices[index]
        if dev.get("lost"):
            raise _err(_real.NVML_ERROR_GPU_IS_LOST)
        if fn in dev.get("not_supported", ()):
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        if fn in MIG_PARENT_UNSUPPORTED and dev.get("mig", {}).get("current"):
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        failing = dev.get("failing", {}).get(fn)  # {"nvmlDeviceGetPowerUsage": "NVML_ERROR_UNKNOWN"}
        if failing:
            raise _err(getattr(_real, failing))
        # {"nvmlDeviceGetPowerUsage": "TypeError"}: the binding fails in Python, not in
        # NVML (a ctypes structure that does not match the library's, an argument the
        # release does not take). Which calls do so on real hardware is not known; the
        # knob lets a test make any of them do it.
        broken = dev.get("python_error", {}).get(fn)
        if broken:
            raise {"TypeError": TypeError, "AttributeError": AttributeError, "ValueError": ValueError}[broken](
                f"{fn}: injected {broken}")
        hang = dev.get("hang", {}).get(fn)  # {"nvmlDeviceGetPowerUsage": 1.5}: the call blocks (a wedged GPU)
        if hang:
            time.sleep(hang)
        return dev

    # -- init, system --------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        code = self.scenario.get("init_error")
        if code is not None:
            raise _err(getattr(_real, code))
        self.refcount += 1

    def nvmlShutdown(self) -> None:
        self._called("nvmlShutdown")
        self.refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._called("nvmlSystemGetDriverVersion")
        return self.scenario["driver_version"]

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._called("nvmlSystemGetCudaDriverVersion_v2")
        return int(self.scenario["cuda_driver_version"])

    # -- identity -------------------------------------------------------------------

    def nvmlDeviceGetCount(self) -> int:
        self._called("nvmlDeviceGetCount")
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._called("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.devices):
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        return self._handle(index)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._dev(handle, "nvmlDeviceGetUUID")["uuid"]

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._dev(handle, "nvmlDeviceGetName")["name"]

    def nvmlDeviceGetPciInfo_v3(self, handle: Any) -> Any:
        dev = self._dev(handle, "nvmlDeviceGetPciInfo_v3")
        bus_id = dev["pci_bus_id"]
        info = _real.nvmlPciInfo_t()
        info.busId = bus_id.encode()
        info.busIdLegacy = bus_id[-12:].encode()
        domain, bus, devfn = bus_id.split(":")
        info.domain = int(domain, 16)
        info.bus = int(bus, 16)
        info.device = int(devfn.split(".")[0], 16)
        info.pciDeviceId = int(dev.get("pci_device_id", "0x233010de"), 16)
        info.pciSubSystemId = int(dev.get("pci_subsystem_id", "0x16c110de"), 16)
        return info

    # -- fast values ------------------------------------------------------------------

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        dev = self._dev(handle, "nvmlDeviceGetUtilizationRates")
        u = _real.c_nvmlUtilization_t()
        u.gpu, u.memory = dev["utilization"]["gpu"], dev["utilization"]["memory"]
        return u

    def nvmlDeviceGetEncoderUtilization(self, handle: Any) -> list[int]:
        return [self._dev(handle, "nvmlDeviceGetEncoderUtilization")["encoder"], 167000]

    def nvmlDeviceGetDecoderUtilization(self, handle: Any) -> list[int]:
        return [self._dev(handle, "nvmlDeviceGetDecoderUtilization")["decoder"], 167000]

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> Any:
        if _addr(handle) >= _MIG_BASE:
            m = self._mig(handle, "nvmlDeviceGetMemoryInfo")["memory"]
        else:
            m = self._dev(handle, "nvmlDeviceGetMemoryInfo" if not version else "nvmlDeviceGetMemoryInfo_v2")["memory"]
        if not version:
            mem = _real.c_nvmlMemory_t()
            # v1 folds the reserved memory into "used".
            mem.total, mem.free, mem.used = m["total"], m["free"], m["used"] + m["reserved"]
            return mem
        if version != _real.nvmlMemory_v2:
            raise _err(_real.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        mem = _real.c_nvmlMemory_v2_t()
        mem.version = version
        mem.total, mem.reserved, mem.free, mem.used = m["total"], m["reserved"], m["free"], m["used"]
        return mem

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._dev(handle, "nvmlDeviceGetPowerUsage")["power_mw"]

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._dev(handle, "nvmlDeviceGetEnforcedPowerLimit")["power_limit_mw"]

    def nvmlDeviceGetTemperatureV(self, handle: Any, sensor: int, version: int = _real.nvmlTemperature_v1) -> int:
        dev = self._dev(handle, "nvmlDeviceGetTemperatureV")
        if version != _real.nvmlTemperature_v1:
            raise _err(_real.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        if sensor != _real.NVML_TEMPERATURE_GPU:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        return dev["temperature_c"]

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        dev = self._dev(handle, "nvmlDeviceGetTemperature")
        if sensor != _real.NVML_TEMPERATURE_GPU:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        return dev["temperature_c"]

    def _clock(self, table: dict[str, int], type: int) -> int:
        key = {_real.NVML_CLOCK_SM: "sm", _real.NVML_CLOCK_MEM: "mem", _real.NVML_CLOCK_GRAPHICS: "sm"}.get(type)
        if key is None:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        return table[key]

    def nvmlDeviceGetClockInfo(self, handle: Any, type: int) -> int:
        return self._clock(self._dev(handle, "nvmlDeviceGetClockInfo")["clocks_mhz"], type)

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, type: int) -> int:
        return self._clock(self._dev(handle, "nvmlDeviceGetMaxClockInfo")["max_clocks_mhz"], type)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return int(self._dev(handle, "nvmlDeviceGetCurrentClocksEventReasons")["clock_event_reasons"])

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int:
        return int(self._dev(handle, "nvmlDeviceGetCurrentClocksThrottleReasons")["clock_event_reasons"])

    def nvmlDeviceGetPerformanceState(self, handle: Any) -> int:
        return self._dev(handle, "nvmlDeviceGetPerformanceState")["pstate"]

    def nvmlDeviceGetFieldValues(self, handle: Any, fieldIds: list[Any]) -> Any:
        dev = self._dev(handle, "nvmlDeviceGetFieldValues")
        values = (_real.c_nvmlFieldValue_t * len(fieldIds))()
        table = dev.get("fields", {})
        unsupported = set(dev.get("not_supported_fields", ()))
        for i, fid in enumerate(fieldIds):
            try:
                values[i].fieldId, values[i].scopeId = fid
            except TypeError:
                values[i].fieldId = fid
            fid = values[i].fieldId
            entry = table.get(str(fid))
            if fid == _real.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION and isinstance(entry, int) \
                    and self.scenario.get("energy_follows_power"):
                # Energy is the integral of power: mJ = mW x s since the double was made.
                # Off by default so golden expositions stay fixed.
                entry = int(entry + dev["power_mw"] * (time.monotonic() - self._created))
            nv = dev.get("nvlink") or {}
            if fid in NVLINK_DATA_FIELDS and entry is not None:
                # A scenario gives one link's KiB counter. scopeId UINT_MAX is the
                # all-links aggregate (nvml.h; shared/reference/nvml-dcgm.md D6): the sum
                # over the links that are up. Whether a per-link read of a down link
                # fails is not verified; D6 takes it as NOT_SUPPORTED, and so does this.
                up = [link for link in range(nv.get("links", 0)) if link not in nv.get("down", ())]
                scope = values[i].scopeId
                if scope == NVLINK_SCOPE_ALL_LINKS:
                    entry = entry * len(up) if up else None
                elif scope not in up:
                    entry = None
            values[i].timestamp = 1_700_000_000_000_000
            if entry is None or fid in unsupported:
                values[i].nvmlReturn = _real.NVML_ERROR_NOT_SUPPORTED
                continue
            if not isinstance(entry, dict):
                entry = {"value": entry}
            vtype = entry.get("type", _real.NVML_VALUE_TYPE_DOUBLE if isinstance(entry["value"], float)
                              else _DEFAULT_FIELD_TYPE)
            values[i].valueType = vtype
            values[i].nvmlReturn = _real.NVML_SUCCESS
            setattr(values[i].value, _UNION_MEMBER[vtype], entry["value"])
        return values

    # -- slow values -------------------------------------------------------------------

    def nvmlDeviceGetViolationStatus(self, device: Any, perfPolicyType: int) -> Any:
        dev = self._dev(device, "nvmlDeviceGetViolationStatus")
        ns = dev.get("violation_ns", {}).get(str(perfPolicyType))
        if ns is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        v = _real.c_nvmlViolationTime_t()
        v.referenceTime = 1_700_000_000_000_000  # us, CPU timestamp
        v.violationTime = ns
        return v

    def nvmlDeviceGetPersistenceMode(self, handle: Any) -> int:
        return self._dev(handle, "nvmlDeviceGetPersistenceMode")["persistence_mode"]

    def nvmlDeviceGetPcieReplayCounter(self, handle: Any) -> int:
        return self._dev(handle, "nvmlDeviceGetPcieReplayCounter")["pcie"]["replay"]

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: Any) -> int:
        return self._dev(handle, "nvmlDeviceGetCurrPcieLinkGeneration")["pcie"]["gen"]

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: Any) -> int:
        return self._dev(handle, "nvmlDeviceGetMaxPcieLinkGeneration")["pcie"]["max_gen"]

    def nvmlDeviceGetGpuMaxPcieLinkGeneration(self, handle: Any) -> int:
        # The GPU's own maximum; "max_gen" above is NVML's "possible with this device
        # and system", which already includes the slot (shared/reference/nvml-dcgm.md D5).
        pcie = self._dev(handle, "nvmlDeviceGetGpuMaxPcieLinkGeneration")["pcie"]
        return pcie.get("gpu_max_gen", pcie["max_gen"])

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle: Any) -> int:
        return self._dev(handle, "nvmlDeviceGetCurrPcieLinkWidth")["pcie"]["width"]

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: Any) -> int:
        return self._dev(handle, "nvmlDeviceGetMaxPcieLinkWidth")["pcie"]["max_width"]

    def nvmlDeviceGetRemappedRows(self, device: Any) -> tuple[int, int, int, int]:
        r = self._dev(device, "nvmlDeviceGetRemappedRows")["remapped_rows"]
        return (r["correctable"], r["uncorrectable"], r["pending"], r["failure"])

    def _link(self, dev: dict[str, Any], link: int) -> dict[str, Any]:
        nv = dev.get("nvlink")
        if not nv:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        if not 0 <= link < nv["links"]:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        return nv

    def nvmlDeviceGetNvLinkState(self, device: Any, link: int) -> int:
        nv = self._link(self._dev(device, "nvmlDeviceGetNvLinkState"), link)
        return 0 if link in nv.get("down", ()) else 1

    def nvmlDeviceGetNvLinkErrorCounter(self, device: Any, link: int, counter: int) -> int:
        nv = self._link(self._dev(device, "nvmlDeviceGetNvLinkErrorCounter"), link)
        if not 0 <= counter < _real.NVML_NVLINK_ERROR_COUNT:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        return int(nv.get("errors", {}).get(str(link), [0, 0, 0, 0, 0])[counter])

    def nvmlDeviceGetGpuFabricInfoV(self, device: Any, gpuFabricInfo: Any) -> int:
        # A scenario's "fabric": {"state": 3, "status": 0} (nvmlGpuFabricState_t and the
        # registration's nvmlReturn_t); without it the GPU is on no fabric (NVML returns
        # NOT_SUPPORTED, as on PCIe boards). Which state a stopped fabric manager leaves
        # an HGX GPU in (not_started or in_progress) is not verified; the
        # hgx_fabric_manager_down scenario uses not_started.
        dev = self._dev(device, "nvmlDeviceGetGpuFabricInfoV")
        fabric = dev.get("fabric")
        if fabric is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        info = getattr(gpuFabricInfo, "_obj", gpuFabricInfo)  # pynvml's callers pass byref(struct)
        if info.version != _real.nvmlGpuFabricInfo_v2:
            raise _err(_real.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        info.state = int(fabric["state"])
        info.status = int(fabric.get("status", 0))
        info.cliqueId = int(fabric.get("clique_id", 0))
        return _real.NVML_SUCCESS

    # -- inventory and limits ---------------------------------------------------------------
    # pynvml returns these strings as str (its convertStrBytes decorator). A scenario
    # without a key reads as NOT_SUPPORTED.

    def _inventory(self, handle: Any, fn: str, key: str) -> str:
        v = self._dev(handle, fn).get("inventory", {}).get(key)
        if v is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return str(v)

    def nvmlDeviceGetSerial(self, handle: Any) -> str:
        return self._inventory(handle, "nvmlDeviceGetSerial", "serial")

    def nvmlDeviceGetVbiosVersion(self, handle: Any) -> str:
        return self._inventory(handle, "nvmlDeviceGetVbiosVersion", "vbios")

    def nvmlDeviceGetInforomImageVersion(self, handle: Any) -> str:
        return self._inventory(handle, "nvmlDeviceGetInforomImageVersion", "inforom")

    def nvmlDeviceGetBoardPartNumber(self, handle: Any) -> str:
        return self._inventory(handle, "nvmlDeviceGetBoardPartNumber", "part_number")

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        v = self._dev(handle, "nvmlDeviceGetPowerManagementDefaultLimit").get("power_default_mw")
        if v is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return int(v)

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> list[int]:
        dev = self._dev(handle, "nvmlDeviceGetPowerManagementLimitConstraints")
        if "power_min_mw" not in dev:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return [int(dev["power_min_mw"]), int(dev["power_max_mw"])]

    def nvmlDeviceGetTemperatureThreshold(self, handle: Any, threshold: int) -> int:
        dev = self._dev(handle, "nvmlDeviceGetTemperatureThreshold")
        key = {_real.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: "slowdown",
               _real.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: "shutdown"}.get(threshold)
        if key is None:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        v = dev.get("temperature_thresholds", {}).get(key)
        if v is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return int(v)

    # -- MIG -----------------------------------------------------------------------------
    # A scenario's "mig": {"current": 1, "pending": 1, "max_instances": 7, "instances":
    # [{"gpu_instance": 1, "compute_instance": 0, "memory": {...}}]}; without it the
    # GPU does not support MIG (NOT_SUPPORTED, as on GPUs before A100).

    def _mig(self, handle: Any, fn: str) -> dict[str, Any]:
        self._called(fn)
        index, slot = divmod(_addr(handle) - _MIG_BASE, 0x100)
        if not 0 <= index < len(self.devices):
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        dev = self.devices[index]
        if dev.get("lost"):
            raise _err(_real.NVML_ERROR_GPU_IS_LOST)
        instances = dev.get("mig", {}).get("instances", [])
        if not dev.get("mig", {}).get("current") or slot >= len(instances):
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        return instances[slot]

    def nvmlDeviceGetMigMode(self, device: Any) -> list[int]:
        mig = self._dev(device, "nvmlDeviceGetMigMode").get("mig")
        if mig is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return [int(mig.get("current", 0)), int(mig.get("pending", mig.get("current", 0)))]

    def nvmlDeviceGetMaxMigDeviceCount(self, device: Any) -> int:
        mig = self._dev(device, "nvmlDeviceGetMaxMigDeviceCount").get("mig")
        if mig is None:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return int(mig.get("max_instances", 7))

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: Any, index: int) -> Any:
        dev = self._dev(device, "nvmlDeviceGetMigDeviceHandleByIndex")
        mig = dev.get("mig") or {}
        if not mig.get("current"):
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < len(mig.get("instances", [])):
            raise _err(_real.NVML_ERROR_NOT_FOUND)
        return ctypes.cast(ctypes.c_void_p(_MIG_BASE + self.devices.index(dev) * 0x100 + index),
                           _real.c_nvmlDevice_t)

    def nvmlDeviceGetGpuInstanceId(self, device: Any) -> int:
        return int(self._mig(device, "nvmlDeviceGetGpuInstanceId")["gpu_instance"])

    def nvmlDeviceGetComputeInstanceId(self, device: Any) -> int:
        return int(self._mig(device, "nvmlDeviceGetComputeInstanceId")["compute_instance"])

    # -- GPM -----------------------------------------------------------------------------

    def nvmlGpmQueryDeviceSupport(self, device: Any) -> Any:
        dev = self._dev(device, "nvmlGpmQueryDeviceSupport")
        s = _real.c_nvmlGpmSupport_t()
        s.version = _real.NVML_GPM_SUPPORT_VERSION
        s.isSupportedDevice = 1 if "gpm" in dev else 0
        return s

    def nvmlGpmSampleAlloc(self) -> Any:
        self._called("nvmlGpmSampleAlloc")
        with self._alloc_lock:
            addr = self._next_gpm
            self._next_gpm += 0x100
            self._gpm_samples[addr] = None
        return ctypes.cast(ctypes.c_void_p(addr), _real.c_nvmlGpmSample_t)

    def nvmlGpmSampleFree(self, gpmSample: Any) -> None:
        self._called("nvmlGpmSampleFree")
        if self._gpm_samples.pop(_addr(gpmSample), "missing") == "missing":
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlGpmSampleGet(self, device: Any, gpmSample: Any) -> Any:
        dev = self._dev(device, "nvmlGpmSampleGet")
        if "gpm" not in dev:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        addr = _addr(gpmSample)
        if addr not in self._gpm_samples:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        self._gpm_samples[addr] = dict(dev["gpm"])
        return gpmSample

    def nvmlGpmMetricsGet(self, metricsGet: Any) -> Any:
        self._called("nvmlGpmMetricsGet")
        if metricsGet.version != _real.NVML_GPM_METRICS_GET_VERSION:
            raise _err(_real.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        s1 = self._gpm_samples.get(_addr(metricsGet.sample1))
        s2 = self._gpm_samples.get(_addr(metricsGet.sample2))
        if s1 is None or s2 is None:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        for i in range(metricsGet.numMetrics):
            m = metricsGet.metrics[i]
            v = s2.get(str(m.metricId))
            if v is None:
                m.nvmlReturn = _real.NVML_ERROR_NOT_SUPPORTED
            else:
                m.nvmlReturn = _real.NVML_SUCCESS
                m.value = float(v)
        return metricsGet

    # -- processes and topology ------------------------------------------------------------

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        dev = self._dev(handle, "nvmlDeviceGetComputeRunningProcesses")
        out = []
        for p in dev.get("processes", []):
            info = _real.c_nvmlProcessInfo_v3_t()
            info.pid, info.usedGpuMemory = p["pid"], p["used_bytes"]
            info.gpuInstanceId = info.computeInstanceId = 0xFFFFFFFF
            out.append(_real.nvmlStructToFriendlyObject(info))
        return out

    def nvmlDeviceGetNumaNodeId(self, handle: Any) -> int:
        # NVML: "only applies to platforms where the GPUs are NUMA nodes" (coherent,
        # Grace-class; shared/reference/nvml-dcgm.md D4), and there it names the GPU's
        # own memory node, which has no CPUs. A scenario models that platform by
        # giving the device "gpu_memory_numa_node". What it returns on a PCIe (x86)
        # platform is not verified: the reference expects it to fail, so the double
        # answers NOT_SUPPORTED there.
        dev = self._dev(handle, "nvmlDeviceGetNumaNodeId")
        if "gpu_memory_numa_node" not in dev:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        return int(dev["gpu_memory_numa_node"])

    def nvmlDeviceGetMemoryAffinity(self, handle: Any, nodeSetSize: int, scope: int) -> Any:
        # The nearest memory node(s) in NODE scope: the CPU-side node ("numa_node"
        # in a scenario) on both platform kinds.
        dev = self._dev(handle, "nvmlDeviceGetMemoryAffinity")
        if scope != _real.NVML_AFFINITY_SCOPE_NODE:
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)  # SOCKET scope is not modelled
        arr = (ctypes.c_ulonglong * nodeSetSize)()
        node = dev.get("numa_node")
        if node is not None and node // 64 < nodeSetSize:
            arr[node // 64] |= 1 << (node % 64)
        return arr

    def nvmlDeviceGetCpuAffinity(self, handle: Any, cpuSetSize: int) -> Any:
        dev = self._dev(handle, "nvmlDeviceGetCpuAffinity")
        arr = (ctypes.c_ulonglong * cpuSetSize)()
        for cpu in _cpulist(dev["cpu_affinity"]):
            if cpu // 64 < cpuSetSize:
                arr[cpu // 64] |= 1 << (cpu % 64)
        return arr

    # -- events ----------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> Any:
        self._called("nvmlEventSetCreate")
        addr = self._next_set
        self._next_set += 0x100
        self._events[addr] = []
        self._registered[addr] = {}
        return ctypes.cast(ctypes.c_void_p(addr), _real.c_nvmlEventSet_t)

    def nvmlDeviceGetSupportedEventTypes(self, handle: Any) -> int:
        return int(self._dev(handle, "nvmlDeviceGetSupportedEventTypes").get("supported_events", 0))

    def nvmlDeviceRegisterEvents(self, handle: Any, eventTypes: int, eventSet: Any) -> None:
        dev = self._dev(handle, "nvmlDeviceRegisterEvents")
        addr = _addr(eventSet)
        if addr not in self._registered:
            raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
        if eventTypes & ~int(dev.get("supported_events", 0)):
            raise _err(_real.NVML_ERROR_NOT_SUPPORTED)
        index = self.devices.index(dev)
        with self._cond:
            self._registered[addr][index] = self._registered[addr].get(index, 0) | eventTypes

    def nvmlEventSetWait_v2(self, eventSet: Any, timeoutms: int) -> Any:
        self._called("nvmlEventSetWait_v2")
        addr = _addr(eventSet)
        with self._cond:
            if addr not in self._events:
                raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
            # Whether waiting on a set that holds a lost GPU fails, and how, is not
            # known (shared/reference/nvml-dcgm.md, D3 says "if"); the scenario key
            # "event_wait_fails_when_lost" makes it fail with GPU_IS_LOST, as D3 fears.
            if self.scenario.get("event_wait_fails_when_lost") and any(
                    self.devices[i].get("lost") for i in self._registered.get(addr, {})):
                raise _err(_real.NVML_ERROR_GPU_IS_LOST)
            self._cond.wait_for(lambda: bool(self._events.get(addr)), timeout=timeoutms / 1000)
            queue = self._events.get(addr)
            if not queue:
                raise _err(_real.NVML_ERROR_TIMEOUT)
            return queue.pop(0)

    def nvmlEventSetFree(self, eventSet: Any) -> None:
        self._called("nvmlEventSetFree")
        addr = _addr(eventSet)
        with self._cond:
            if self._events.pop(addr, None) is None:
                raise _err(_real.NVML_ERROR_INVALID_ARGUMENT)
            self._registered.pop(addr, None)
