"""Every NVML call the GPU collector makes, in one place.

`nvml` is the pynvml module (nvidia-ml-py), passed in by the caller. Calls that
NVML answers with NOT_SUPPORTED (or FUNCTION_NOT_FOUND on an older driver) are
remembered per device and never made again; other errors skip that one value
for this pass and are counted; GPU_IS_LOST raises GpuLost so the caller stops
serving that device. Values leave here in base units.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.absent import Absent
from agent.catalog import MetricSpec
from agent.untyped import Nvml, NvmlObject
from collectors.gpu import fields as F
from collectors.gpu.specs import (
    GPU_CLOCK_EVENT_REASON_ACTIVE,
    GPU_CLOCK_HERTZ,
    GPU_CLOCK_MAX_HERTZ,
    GPU_ECC_ERRORS_TOTAL,
    GPU_ENERGY_JOULES_TOTAL,
    GPU_FABRIC_STATE,
    GPU_FABRIC_UP,
    GPU_INVENTORY_INFO,
    GPU_MEMORY_FREE_BYTES,
    GPU_MEMORY_RESERVED_BYTES,
    GPU_MEMORY_TOTAL_BYTES,
    GPU_MEMORY_USED_BYTES,
    GPU_MIG_MEMORY_TOTAL_BYTES,
    GPU_MIG_MEMORY_USED_BYTES,
    GPU_MIG_MODE,
    GPU_NVLINK_DATA_BYTES_TOTAL,
    GPU_NVLINK_ERRORS_TOTAL,
    GPU_NVLINK_UP,
    GPU_PCIE_DATA_BYTES_TOTAL,
    GPU_PCIE_LINK_GENERATION,
    GPU_PCIE_LINK_WIDTH,
    GPU_PCIE_REPLAYS_TOTAL,
    GPU_PERFORMANCE_STATE,
    GPU_PERSISTENCE_MODE,
    GPU_POWER_LIMIT_BOUND_WATTS,
    GPU_POWER_LIMIT_WATTS,
    GPU_POWER_WATTS,
    GPU_RECOVERY_ACTION,
    GPU_REMAPPED_ROWS,
    GPU_ROW_REMAP_FAILURE,
    GPU_ROW_REMAP_PENDING,
    GPU_TEMPERATURE_CELSIUS,
    GPU_TEMPERATURE_THRESHOLD_CELSIUS,
    GPU_UTILIZATION_RATIO,
    GPU_VIOLATION_SECONDS_TOTAL,
)

log = logging.getLogger("infernode.collector.gpu")

Labels = tuple[tuple[str, str], ...]
Reading = tuple[MetricSpec, Labels, float]

# NVML return codes (nvmlReturn_t), stable ABI.
SUCCESS = 0
ERROR_NO_PERMISSION = 4
ERROR_NOT_SUPPORTED = 3
ERROR_DRIVER_NOT_LOADED = 9
ERROR_TIMEOUT = 10
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_FUNCTION_NOT_FOUND = 13
ERROR_GPU_IS_LOST = 15
ERROR_LIB_RM_VERSION_MISMATCH = 18
_UNSUPPORTED = (ERROR_NOT_SUPPORTED, ERROR_FUNCTION_NOT_FOUND)

PSTATE_UNKNOWN = 32
AFFINITY_SCOPE_NODE = 0  # nvmlAffinityScope_t
MIG_ENABLE = 1  # NVML_DEVICE_MIG_ENABLE
MHZ = 1e6

# nvmlEventType* bits this agent listens for.
EVENT_SINGLE_BIT_ECC = 0x1
EVENT_DOUBLE_BIT_ECC = 0x2
EVENT_XID = 0x8
EVENT_MASK = EVENT_SINGLE_BIT_ECC | EVENT_DOUBLE_BIT_ECC | EVENT_XID


class NvmlUnavailable(Absent):
    """NVML cannot be used on this host; reason and fix are for people."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason, fix)


class GpuLost(Exception):
    pass


_INIT_ERRORS = {
    ERROR_LIBRARY_NOT_FOUND: ("libnvidia-ml.so.1 not found (no NVIDIA driver installed)",
                              "install the NVIDIA driver (`infernode bootstrap`), or disable the gpu collector "
                              "on nodes without GPUs"),
    ERROR_DRIVER_NOT_LOADED: ("the NVIDIA kernel driver is not loaded",
                              "load it (`modprobe nvidia`) or reinstall the driver; check `dmesg | grep -i nvrm`"),
    ERROR_NO_PERMISSION: ("no permission to open /dev/nvidia*",
                          "run infernode as root (its systemd unit does)"),
    ERROR_LIB_RM_VERSION_MISMATCH: ("NVML library and kernel driver versions differ",
                                    "reboot (or reload the nvidia modules) after the driver upgrade"),
}


def describe_init_error(code: int, text: str) -> NvmlUnavailable:
    reason, fix = _INIT_ERRORS.get(code, (f"nvmlInit failed: {text} (NVML error {code})",
                                          "check `nvidia-smi` and `dmesg | grep -i nvrm`"))
    return NvmlUnavailable(reason, fix)


@dataclass
class Device:
    index: int
    handle: NvmlObject
    uuid: str
    name: str
    pci_bus_id: str
    unsupported: set[str] = field(default_factory=set)
    fast_fields: list[int] = field(default_factory=lambda: list(F.FAST_FIELDS))
    slow_fields: list[int] = field(default_factory=lambda: list(F.SLOW_FIELDS))
    nvlinks: list[int] = field(default_factory=list)
    gpm_supported: bool = False
    gpm_prev: NvmlObject = None
    read_errors: int = 0
    probed_at: float = field(default_factory=time.monotonic)
    mig_enabled: bool = False
    static: list[Reading] = field(default_factory=list)  # inventory and limits, read when probed
    _label_sets: dict[Labels, dict[str, str]] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return {"gpu": str(self.index), "uuid": self.uuid, "pci_bus_id": self.pci_bus_id,
                "model_name": self.name}

    def labels_with(self, extra: Labels) -> dict[str, str]:
        """The GPU's labels plus `extra`, built once per label set and shared by
        every sample that carries it (samples never mutate their labels)."""
        got = self._label_sets.get(extra)
        if got is None:
            got = self._label_sets[extra] = {**self.labels, **dict(extra)}
        return got


@dataclass
class FastReading:
    readings: list[Reading]
    reasons_mask: int | None
    sm_clock_hz: float | None
    processes: list[tuple[int, int]]
    recovery_action: str | None = None


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


class MissingEntryPoint(Exception):
    """The installed bindings have no such function (an older nvidia-ml-py)."""


class _NeverRaised(Exception):
    pass


class _Binding:
    """The pynvml module as the reader calls it. A function this release of the
    bindings lacks (nvidia-ml-py 12.535-12.560 have no nvmlDeviceGetTemperatureV;
    12.535 has no nvmlDeviceGetNumaNodeId and no NVMLLibraryMismatchError) reads
    as a call that raises MissingEntryPoint, which `_call` treats as not supported
    on that device. Any other missing name is the AttributeError it always was."""

    def __init__(self, module: Nvml) -> None:
        self._module = module

    def __getattr__(self, name: str) -> NvmlObject:
        try:
            value = getattr(self._module, name)
        except AttributeError:
            if name == "NVMLLibraryMismatchError":
                value = _NeverRaised
            elif name.startswith("nvml") and name[4:5].isupper():
                def missing(*_: object, **__: object) -> NvmlObject:
                    raise MissingEntryPoint(name)
                value = missing
            else:
                raise
        # Looked up once: the reader calls these thousands of times a minute.
        setattr(self, name, value)
        return value


class NvmlReader:
    def __init__(self, nvml: Nvml) -> None:
        self.nvml = _Binding(nvml)
        # Field ids whose numbers moved between binding releases are used only when
        # these bindings give them the numbers this agent knows (fields.py).
        self.slow_fields = tuple(fid for fid in F.SLOW_FIELDS if fid not in F.VIOLATION_FIELD_NAMES
                                 or getattr(nvml, F.VIOLATION_FIELD_NAMES[fid], None) == fid)

    # -- lifecycle -------------------------------------------------------

    def init(self) -> None:
        n = self.nvml
        try:
            n.nvmlInit()
        except n.NVMLError as e:
            raise describe_init_error(e.value, str(e)) from None

    def shutdown(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError as e:
            log.debug("nvmlShutdown: %s", e)

    def driver_versions(self) -> tuple[str, str]:
        n = self.nvml
        try:
            driver = _text(n.nvmlSystemGetDriverVersion())
        except n.NVMLError:
            driver = "unknown"
        try:
            cuda = F.cuda_version_text(n.nvmlSystemGetCudaDriverVersion_v2())
        except n.NVMLError:
            cuda = "unknown"
        return driver, cuda

    def discover(self) -> list[Device]:
        """Every GPU NVML enumerates; a GPU already lost at discovery is skipped
        (it has no UUID to report under) and logged."""
        n = self.nvml
        devices = []
        for i in range(n.nvmlDeviceGetCount()):
            try:
                h = n.nvmlDeviceGetHandleByIndex(i)
                dev = Device(
                    index=i, handle=h, uuid=_text(n.nvmlDeviceGetUUID(h)), name=_text(n.nvmlDeviceGetName(h)),
                    pci_bus_id=_text(n.nvmlDeviceGetPciInfo_v3(h).busId),
                )
            except n.NVMLError as e:
                log.warning("GPU %d cannot be identified, skipping it: %s", i, e)
                continue
            dev.slow_fields = list(self.slow_fields)
            self._probe_static(dev)
            devices.append(dev)
        return devices

    def reprobe(self, dev: Device) -> None:
        """Forget what this GPU answered NOT_SUPPORTED and probe it again: support
        changes with the MIG mode (parent utilization and GPM are not supported in
        MIG mode) and with the driver (shared/reference/nvml-dcgm.md D8)."""
        self.release(dev)
        dev.unsupported.clear()
        dev.fast_fields = list(F.FAST_FIELDS)
        dev.slow_fields = list(self.slow_fields)
        dev.nvlinks = []
        self._probe_static(dev)
        dev.probed_at = time.monotonic()

    def _inventory(self, dev: Device) -> list[Reading]:
        """What an RMA asks for, and the limits the GPU runs within: read when the GPU
        is probed (at discovery and each re-probe), not every pass."""
        n, h, c = self.nvml, dev.handle, self._call
        ids: list[tuple[str, str]] = []
        for label, key, fn in (("serial", "serial", n.nvmlDeviceGetSerial),
                               ("vbios_version", "vbios", n.nvmlDeviceGetVbiosVersion),
                               ("inforom_image_version", "inforom", n.nvmlDeviceGetInforomImageVersion),
                               ("board_part_number", "part_number", n.nvmlDeviceGetBoardPartNumber)):
            v = c(dev, key, fn, h)
            ids.append((label, _text(v).strip()[:64] if v is not None else ""))
        out: list[Reading] = [(GPU_INVENTORY_INFO, tuple(ids), 1.0)]
        default = c(dev, "power_default", n.nvmlDeviceGetPowerManagementDefaultLimit, h)
        if default is not None:
            out.append((GPU_POWER_LIMIT_BOUND_WATTS, (("bound", "default"),), default / 1000.0))
        bounds = c(dev, "power_constraints", n.nvmlDeviceGetPowerManagementLimitConstraints, h)
        if bounds is not None:
            out.append((GPU_POWER_LIMIT_BOUND_WATTS, (("bound", "min"),), bounds[0] / 1000.0))
            out.append((GPU_POWER_LIMIT_BOUND_WATTS, (("bound", "max"),), bounds[1] / 1000.0))
        for name, kind in (("slowdown", n.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN),
                           ("shutdown", n.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN)):
            t = F.clean_value(c(dev, f"temp_threshold:{name}", n.nvmlDeviceGetTemperatureThreshold, h, kind))
            if t is not None:
                out.append((GPU_TEMPERATURE_THRESHOLD_CELSIUS, (("threshold", name),), t))
        return out

    def _probe_static(self, dev: Device) -> None:
        n = self.nvml
        dev.static = self._inventory(dev)
        for link in range(getattr(n, "NVML_NVLINK_MAX_LINKS", 18)):
            try:
                n.nvmlDeviceGetNvLinkState(dev.handle, link)
            except n.NVMLError:
                # NOT_SUPPORTED on the first link: no NVLink; INVALID_ARGUMENT past the last.
                break
            dev.nvlinks.append(link)
        try:
            dev.gpm_supported = bool(n.nvmlGpmQueryDeviceSupport(dev.handle).isSupportedDevice)
        except n.NVMLError:
            dev.gpm_supported = False

    # -- one call, with the per-device error policy -------------------------

    def _call(self, dev: Device, key: str, fn: Callable[..., NvmlObject], *args: object, **kw: object) -> NvmlObject:
        if key in dev.unsupported:
            return None
        n = self.nvml
        try:
            return fn(*args, **kw)
        except (n.NVMLLibraryMismatchError, MissingEntryPoint):
            # pynvml's unversioned wrapper found no matching symbol in this driver's
            # library, or these bindings predate the function.
            dev.unsupported.add(key)
            return None
        except n.NVMLError as e:
            code = e.value
            if code in _UNSUPPORTED:
                dev.unsupported.add(key)
            elif code == ERROR_GPU_IS_LOST:
                raise GpuLost(dev.uuid) from None
            else:
                dev.read_errors += 1
                log.debug("GPU %d %s: %s", dev.index, key, e)
            return None

    def _fields(self, dev: Device, key: str, ids: list[int]) -> dict[int, float]:
        if not ids:
            return {}
        vals = self._call(dev, key, self.nvml.nvmlDeviceGetFieldValues, dev.handle, ids)
        out: dict[int, float] = {}
        if vals is None:
            return out
        for v in vals:
            ret = v.nvmlReturn
            if ret == SUCCESS:
                x = F.decode_field_value(v.valueType, v.value)
                if x is not None:
                    out[v.fieldId] = x
            elif ret in _UNSUPPORTED:
                ids.remove(v.fieldId)
            elif ret == ERROR_GPU_IS_LOST:
                raise GpuLost(dev.uuid)
            else:
                dev.read_errors += 1
        return out

    # -- passes ------------------------------------------------------------------

    def read_fast(self, dev: Device) -> FastReading:
        n, h, c = self.nvml, dev.handle, self._call
        out: list[Reading] = []
        util = c(dev, "util", n.nvmlDeviceGetUtilizationRates, h)
        if util is not None:
            out.append((GPU_UTILIZATION_RATIO, (("engine", "gpu"),), util.gpu / 100.0))
            out.append((GPU_UTILIZATION_RATIO, (("engine", "memory_copy"),), util.memory / 100.0))
        for engine, fn in (("encoder", n.nvmlDeviceGetEncoderUtilization),
                           ("decoder", n.nvmlDeviceGetDecoderUtilization)):
            r = c(dev, engine, fn, h)
            if r is not None:
                out.append((GPU_UTILIZATION_RATIO, (("engine", engine),), r[0] / 100.0))
        mem = c(dev, "memory_v2", n.nvmlDeviceGetMemoryInfo, h, version=n.nvmlMemory_v2)
        if mem is None and "memory_v2" in dev.unsupported:
            mem = c(dev, "memory_v1", n.nvmlDeviceGetMemoryInfo, h)
        if mem is not None:
            out.append((GPU_MEMORY_TOTAL_BYTES, (), float(mem.total)))
            out.append((GPU_MEMORY_USED_BYTES, (), float(mem.used)))
            out.append((GPU_MEMORY_FREE_BYTES, (), float(mem.free)))
            if hasattr(mem, "reserved"):
                out.append((GPU_MEMORY_RESERVED_BYTES, (), float(mem.reserved)))
        power = c(dev, "power", n.nvmlDeviceGetPowerUsage, h)
        if power is not None:
            out.append((GPU_POWER_WATTS, (), power / 1000.0))
        limit = c(dev, "power_limit", n.nvmlDeviceGetEnforcedPowerLimit, h)
        if limit is not None:
            out.append((GPU_POWER_LIMIT_WATTS, (), limit / 1000.0))
        temp = c(dev, "temperature_v", n.nvmlDeviceGetTemperatureV, h, n.NVML_TEMPERATURE_GPU)
        if temp is None and "temperature_v" in dev.unsupported:
            temp = c(dev, "temperature", n.nvmlDeviceGetTemperature, h, n.NVML_TEMPERATURE_GPU)
        if temp is not None:
            out.append((GPU_TEMPERATURE_CELSIUS, (("sensor", "gpu"),), float(temp)))
        sm_hz = None
        for clock, ctype in (("sm", n.NVML_CLOCK_SM), ("memory", n.NVML_CLOCK_MEM)):
            mhz = c(dev, f"clock_{clock}", n.nvmlDeviceGetClockInfo, h, ctype)
            if mhz is not None:
                out.append((GPU_CLOCK_HERTZ, (("clock", clock),), mhz * MHZ))
                if clock == "sm":
                    sm_hz = mhz * MHZ
        mask = c(dev, "clock_events", n.nvmlDeviceGetCurrentClocksEventReasons, h)
        if mask is None and "clock_events" in dev.unsupported:
            # Drivers before 535 know only the older name for the same bits.
            mask = c(dev, "clock_throttle", n.nvmlDeviceGetCurrentClocksThrottleReasons, h)
        if mask is not None:
            for bit, reason in F.CLOCK_EVENT_REASONS.items():
                out.append((GPU_CLOCK_EVENT_REASON_ACTIVE, (("reason", reason),),
                            1.0 if mask & bit else 0.0))
        pstate = c(dev, "pstate", n.nvmlDeviceGetPerformanceState, h)
        if pstate is not None and pstate != PSTATE_UNKNOWN:
            out.append((GPU_PERFORMANCE_STATE, (), float(pstate)))
        vals = self._fields(dev, "fields_fast", dev.fast_fields)
        if F.FI_MEMORY_TEMP in vals:
            out.append((GPU_TEMPERATURE_CELSIUS, (("sensor", "memory"),), vals[F.FI_MEMORY_TEMP]))
        if F.FI_TOTAL_ENERGY in vals:
            out.append((GPU_ENERGY_JOULES_TOTAL, (), vals[F.FI_TOTAL_ENERGY] / 1000.0))
        for fid, direction in F.PCIE_BYTES_FIELDS.items():
            if fid in vals:
                out.append((GPU_PCIE_DATA_BYTES_TOTAL, (("direction", direction),), vals[fid]))
        if dev.gpm_supported:
            out.extend(self._gpm(dev))
        if dev.mig_enabled:
            out.extend(self._mig_memory(dev))
        procs = c(dev, "processes", n.nvmlDeviceGetComputeRunningProcesses, h) or []
        pairs = [(p.pid, p.usedGpuMemory) for p in procs if p.usedGpuMemory is not None]
        action = None
        if F.FI_GPU_RECOVERY_ACTION in vals:
            code = int(vals[F.FI_GPU_RECOVERY_ACTION])
            action = F.RECOVERY_ACTIONS.get(code, f"unknown_{code}")
            out.append((GPU_RECOVERY_ACTION, (("action", action),), 1.0))
        return FastReading(out, mask, sm_hz, pairs, action)

    def _nvlink_throughput(self, dev: Device) -> list[Reading]:
        """Data bytes over all of the GPU's links: one entry per direction at the
        all-links scope (scopeId UINT_MAX, nvml.h), so a link that is down or does not
        support the field cannot erase the GPU's total (shared/reference/nvml-dcgm.md D6)."""
        ids = [(fid, F.NVLINK_SCOPE_ALL_LINKS) for fid in F.NVLINK_THROUGHPUT_FIELDS]
        vals = self._call(dev, "nvlink_throughput", self.nvml.nvmlDeviceGetFieldValues, dev.handle, ids)
        if vals is None:
            return []
        out: list[Reading] = []
        unsupported = 0
        for v in vals:
            if v.nvmlReturn == SUCCESS:
                x = F.decode_field_value(v.valueType, v.value)
                direction = F.NVLINK_THROUGHPUT_FIELDS.get(v.fieldId)
                if x is not None and direction is not None:
                    out.append((GPU_NVLINK_DATA_BYTES_TOTAL, (("direction", direction),), x * 1024.0))
            elif v.nvmlReturn in _UNSUPPORTED:
                unsupported += 1
            elif v.nvmlReturn == ERROR_GPU_IS_LOST:
                raise GpuLost(dev.uuid)
            else:
                dev.read_errors += 1
        if unsupported == len(ids):
            dev.unsupported.add("nvlink_throughput")
        return out

    def _gpm(self, dev: Device) -> list[Reading]:
        """GPM metrics are rates between two samples: keep the previous sample
        per device and compute against it, so each pass costs one sample."""
        n = self.nvml
        sample = self._call(dev, "gpm_alloc", n.nvmlGpmSampleAlloc)
        if sample is None:
            return []
        try:
            got = self._call(dev, "gpm_sample", n.nvmlGpmSampleGet, dev.handle, sample)
        except GpuLost:
            self._gpm_free(sample)
            raise
        if got is None:
            self._gpm_free(sample)
            return []
        prev, dev.gpm_prev = dev.gpm_prev, sample
        if prev is None:
            return []
        try:
            mg = n.c_nvmlGpmMetricsGet_t()
            mg.version = n.NVML_GPM_METRICS_GET_VERSION
            mg.numMetrics = len(F.GPM_METRICS)
            mg.sample1 = prev
            mg.sample2 = sample
            for i, mid in enumerate(F.GPM_METRICS):
                mg.metrics[i].metricId = mid
            if self._call(dev, "gpm_metrics", n.nvmlGpmMetricsGet, mg) is None:
                return []
            out: list[Reading] = []
            for i, name in enumerate(F.GPM_METRICS.values()):
                m = mg.metrics[i]
                v = F.clean_value(m.value) if m.nvmlReturn == SUCCESS else None
                if v is not None:
                    out.append((name, (), v / 100.0))
            return out
        finally:
            self._gpm_free(prev)

    def _gpm_free(self, sample: NvmlObject) -> None:
        try:
            self.nvml.nvmlGpmSampleFree(sample)
        except self.nvml.NVMLError as e:
            log.debug("nvmlGpmSampleFree: %s", e)

    def release(self, dev: Device) -> None:
        if dev.gpm_prev is not None:
            self._gpm_free(dev.gpm_prev)
            dev.gpm_prev = None

    def _fabric(self, dev: Device) -> list[Reading]:
        """The GPU's NVLink-fabric registration (HGX: the fabric manager's work). A
        stopped fabric manager leaves CUDA failing while every other metric looks
        healthy (shared/reference/nvml-dcgm.md, section 5)."""
        n = self.nvml
        try:
            info = n.c_nvmlGpuFabricInfoV_t()
        except AttributeError:  # bindings without the structure: treated as not supported
            dev.unsupported.add("fabric")
            return []
        if self._call(dev, "fabric", n.nvmlDeviceGetGpuFabricInfoV, dev.handle, ctypes.byref(info)) is None:
            return []
        state = F.FABRIC_STATES.get(int(info.state))
        if state is None:  # NVML_GPU_FABRIC_STATE_NOT_SUPPORTED: on no fabric
            dev.unsupported.add("fabric")
            return []
        up = state == "completed" and int(info.status) == SUCCESS
        out: list[Reading] = [(GPU_FABRIC_UP, (), 1.0 if up else 0.0)]
        out += [(GPU_FABRIC_STATE, (("state", name),), 1.0 if name == state else 0.0)
                for name in F.FABRIC_STATES.values()]
        return out

    def _mig_memory(self, dev: Device) -> list[Reading]:
        """Memory per MIG instance (GPU instance, compute instance): in MIG mode the
        parent's framebuffer total says nothing about what each instance has left."""
        n, c = self.nvml, self._call
        count = c(dev, "mig_count", n.nvmlDeviceGetMaxMigDeviceCount, dev.handle)
        out: list[Reading] = []
        for i in range(int(count or 0)):
            try:
                mh = n.nvmlDeviceGetMigDeviceHandleByIndex(dev.handle, i)
            except n.NVMLError as e:
                if e.value == ERROR_GPU_IS_LOST:
                    raise GpuLost(dev.uuid) from None
                continue  # NOT_FOUND: no instance in this slot
            gi = c(dev, "mig_gi", n.nvmlDeviceGetGpuInstanceId, mh)
            ci = c(dev, "mig_ci", n.nvmlDeviceGetComputeInstanceId, mh)
            mem = c(dev, "mig_memory", n.nvmlDeviceGetMemoryInfo, mh, version=n.nvmlMemory_v2)
            if gi is None or ci is None or mem is None:
                continue
            labels = (("gpu_instance", str(gi)), ("compute_instance", str(ci)))
            out.append((GPU_MIG_MEMORY_USED_BYTES, labels, float(mem.used)))
            out.append((GPU_MIG_MEMORY_TOTAL_BYTES, labels, float(mem.total)))
        return out

    def read_slow(self, dev: Device) -> list[Reading]:
        n, h, c = self.nvml, dev.handle, self._call
        out: list[Reading] = []
        mig = c(dev, "mig_mode", n.nvmlDeviceGetMigMode, h)
        if mig is not None:
            current, pending = (int(x) for x in mig)
            dev.mig_enabled = current == MIG_ENABLE
            out.append((GPU_MIG_MODE, (("state", "current"),), 1.0 if current == MIG_ENABLE else 0.0))
            out.append((GPU_MIG_MODE, (("state", "pending"),), 1.0 if pending == MIG_ENABLE else 0.0))
        if "fabric" not in dev.unsupported:
            out.extend(self._fabric(dev))
        for clock, ctype in (("sm", n.NVML_CLOCK_SM), ("memory", n.NVML_CLOCK_MEM)):
            mhz = c(dev, f"max_clock_{clock}", n.nvmlDeviceGetMaxClockInfo, h, ctype)
            if mhz is not None:
                out.append((GPU_CLOCK_MAX_HERTZ, (("clock", clock),), mhz * MHZ))
        pm = c(dev, "persistence", n.nvmlDeviceGetPersistenceMode, h)
        if pm is not None:
            out.append((GPU_PERSISTENCE_MODE, (), 1.0 if pm else 0.0))
        replay = c(dev, "pcie_replay", n.nvmlDeviceGetPcieReplayCounter, h)
        if replay is not None:
            out.append((GPU_PCIE_REPLAYS_TOTAL, (), float(replay)))
        for metric, state, fn in (
            (GPU_PCIE_LINK_GENERATION, "current", n.nvmlDeviceGetCurrPcieLinkGeneration),
            (GPU_PCIE_LINK_GENERATION, "max", n.nvmlDeviceGetMaxPcieLinkGeneration),
            (GPU_PCIE_LINK_WIDTH, "current", n.nvmlDeviceGetCurrPcieLinkWidth),
            (GPU_PCIE_LINK_WIDTH, "max", n.nvmlDeviceGetMaxPcieLinkWidth),
        ):
            v = F.clean_value(c(dev, f"{metric}:{state}", fn, h))
            if v is not None:
                out.append((metric, (("state", state),), v))
        # The GPU's own maximum, which NVML's "max" above is not (pcie_link.py).
        v = F.clean_value(c(dev, "pcie_gpu_max_gen", n.nvmlDeviceGetGpuMaxPcieLinkGeneration, h))
        if v is not None:
            out.append((GPU_PCIE_LINK_GENERATION, (("state", "device_max"),), v))
        vals = self._fields(dev, "fields_slow", dev.slow_fields)
        for fid, policy in F.VIOLATION_FIELDS.items():
            if fid in vals:
                out.append((GPU_VIOLATION_SECONDS_TOTAL, (("policy", policy),), vals[fid] / 1e9))
        for ptype, policy in F.PERF_POLICIES.items():
            if any(fid in vals for fid in F.POLICY_REPLACED_BY.get(ptype, ())):
                continue
            viol = c(dev, f"violation:{policy}", n.nvmlDeviceGetViolationStatus, h, ptype)
            if viol is not None:
                ns = F.clean_value(viol.violationTime)
                if ns is not None:
                    out.append((GPU_VIOLATION_SECONDS_TOTAL, (("policy", policy),), ns / 1e9))
        for fid, (etype, scope) in F.ECC_FIELDS.items():
            if fid in vals:
                out.append((GPU_ECC_ERRORS_TOTAL, (("type", etype), ("scope", scope)), vals[fid]))
        rows = c(dev, "remapped_rows", n.nvmlDeviceGetRemappedRows, h)
        if rows is not None:
            corr, unc, pending, failure = rows
            out.append((GPU_REMAPPED_ROWS, (("cause", "correctable"),), float(corr)))
            out.append((GPU_REMAPPED_ROWS, (("cause", "uncorrectable"),), float(unc)))
            out.append((GPU_ROW_REMAP_PENDING, (), 1.0 if pending else 0.0))
            out.append((GPU_ROW_REMAP_FAILURE, (), 1.0 if failure else 0.0))
        # Byte counters: rate() over them needs no 1 s resolution, and the per-link
        # bulk read is the costliest call of a pass.
        if dev.nvlinks and "nvlink_throughput" not in dev.unsupported:
            out.extend(self._nvlink_throughput(dev))
        for link in dev.nvlinks:
            state = c(dev, f"nvlink_state:{link}", n.nvmlDeviceGetNvLinkState, h, link)
            if state is not None:
                out.append((GPU_NVLINK_UP, (("link", str(link)),), 1.0 if state else 0.0))
            for cid, counter in F.NVLINK_ERROR_COUNTERS.items():
                v = c(dev, f"nvlink_err:{link}:{cid}", n.nvmlDeviceGetNvLinkErrorCounter, h, link, cid)
                if v is not None:
                    out.append((GPU_NVLINK_ERRORS_TOTAL, (("link", str(link)), ("counter", counter)),
                                float(v)))
        return out

    # -- topology ----------------------------------------------------------------

    def memory_numa_node(self, dev: Device) -> int | None:
        """The GPU's own memory as a NUMA node: NVML documents nvmlDeviceGetNumaNodeId
        only "for platforms where the GPUs are NUMA nodes" (coherent, Grace-class).
        That node has no CPUs: it is never the node to pin a worker's CPUs to."""
        v = self._call(dev, "numa_node", self.nvml.nvmlDeviceGetNumaNodeId, dev.handle)
        return None if v is None or v < 0 else int(v)

    def nearest_memory_nodes(self, dev: Device, nodes: int) -> list[int] | None:
        """The NUMA node(s) nearest the GPU (nvmlDeviceGetMemoryAffinity, NODE scope),
        the CPU-side node NVML would pick; None when not answered."""
        words = max(1, (nodes + 63) // 64)
        arr = self._call(dev, "memory_affinity", self.nvml.nvmlDeviceGetMemoryAffinity, dev.handle, words,
                         AFFINITY_SCOPE_NODE)
        if arr is None:
            return None
        return [w * 64 + b for w, word in enumerate(arr) for b in range(64) if int(word) >> b & 1]

    def cpu_affinity_words(self, dev: Device, ncpus: int) -> list[int] | None:
        words = max(1, (ncpus + 63) // 64)
        arr = self._call(dev, "cpu_affinity", self.nvml.nvmlDeviceGetCpuAffinity, dev.handle, words)
        return None if arr is None else [int(w) for w in arr]

    # -- events ------------------------------------------------------------------

    def event_set(self, devices: list[Device]) -> tuple[NvmlObject, list[Device]]:
        """An event set with XID and ECC events registered on every device that
        supports them; (None, []) when none does."""
        n = self.nvml
        evset = n.nvmlEventSetCreate()
        registered = []
        for dev in devices:
            try:
                mask = n.nvmlDeviceGetSupportedEventTypes(dev.handle) & EVENT_MASK
                if mask:
                    n.nvmlDeviceRegisterEvents(dev.handle, mask, evset)
                    registered.append(dev)
            except n.NVMLError as e:
                log.info("GPU %d: no XID/ECC events (%s)", dev.index, e)
        if not registered:
            self.event_set_free(evset)
            return None, []
        return evset, registered

    def event_wait(self, evset: NvmlObject, timeout_ms: int) -> NvmlObject | None:
        """The next event's data, or None when the timeout passed first."""
        n = self.nvml
        try:
            return n.nvmlEventSetWait_v2(evset, timeout_ms)
        except n.NVMLError as e:
            if e.value == ERROR_TIMEOUT:
                return None
            raise

    def event_set_free(self, evset: NvmlObject) -> None:
        try:
            self.nvml.nvmlEventSetFree(evset)
        except self.nvml.NVMLError as e:
            log.debug("nvmlEventSetFree: %s", e)
