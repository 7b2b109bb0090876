"""NVML field ids, clock-event reason bits and value decoding: plain tables and
pure functions, no NVML calls (those live in nvml_reader.py).

Numbers are NVML's ABI (nvml.h / pynvml constants); they are spelled out here
because this module must not import pynvml.
"""

from __future__ import annotations

import math

from collectors.gpu.specs import (
    GPU_DRAM_ACTIVE_RATIO,
    GPU_GRAPHICS_ACTIVE_RATIO,
    GPU_SM_ACTIVE_RATIO,
    GPU_SM_OCCUPANCY_RATIO,
    GPU_TENSOR_ACTIVE_RATIO,
)

# nvmlDeviceGetFieldValues ids read every fast pass (ids from nvml.h).
FI_MEMORY_TEMP = 82  # HBM temperature, C
FI_TOTAL_ENERGY = 83  # mJ since the driver loaded
# Throttle ("violation") time in ns. NVML documents these field ids "in ns":
# FI 74/76 (CLOCKS_EVENT_REASON_SW_POWER_CAP / _SYNC_BOOST, alias PERF_POLICY_POWER /
# _SYNC_BOOST) and 269-271 (SW/HW thermal slowdown, HW power brake). The ids moved
# between binding releases (251-253 in an older pynvml), so the reader uses 269-271
# only when the installed bindings give them these numbers.
VIOLATION_FIELDS = {
    74: "power",
    76: "sync_boost",
    269: "sw_thermal",
    270: "hw_thermal",
    271: "hw_power_brake",
}
VIOLATION_FIELD_NAMES = {
    269: "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN",
    270: "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN",
    271: "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN",
}
# The deprecated nvmlDeviceGetViolationStatus (to be removed in CUDA 14.0), per
# nvmlPerfPolicyType_t: nvmlViolationTime_t.violationTime, documented in ns. It is
# the only source for the policies without a field twin, and the fallback for
# those with one: power and sync_boost when FI 74/76 are not supported, thermal when
# neither 269 nor 270 is.
PERF_POLICIES = {
    0: "power",
    1: "thermal",
    2: "sync_boost",
    3: "board_limit",
    4: "low_utilization",
    5: "reliability",
    10: "total_app_clocks",
    11: "total_base_clocks",
}
# Deprecated policy -> the field ids that replace it.
POLICY_REPLACED_BY = {0: (74,), 1: (269, 270), 2: (76,)}
# PCIe byte counters (Hopper and later; NOT_SUPPORTED elsewhere).
PCIE_BYTES_FIELDS = {197: "tx", 198: "rx"}
# NVIDIA's recommended recovery for the GPU now (nvmlDeviceGpuRecoveryAction_t);
# it changes with XID 154. Read every fast pass: a drain or reboot should stop the
# worker within a second.
FI_GPU_RECOVERY_ACTION = 230
RECOVERY_ACTIONS = {
    0: "none",
    1: "gpu_reset",
    2: "node_reboot",
    3: "drain_p2p",
    4: "drain_and_reset",
    5: "recover_imex_domain",
    6: "bus_reset",
    7: "system_reboot",
}
FAST_FIELDS = (FI_MEMORY_TEMP, FI_TOTAL_ENERGY, *PCIE_BYTES_FIELDS, FI_GPU_RECOVERY_ACTION)

# nvmlGpuFabricState_t; NOT_SUPPORTED (0) means the GPU is on no NVLink fabric.
FABRIC_STATES = {1: "not_started", 2: "in_progress", 3: "completed"}
# NVLink data throughput counters in KiB, asked at the all-links scope.
NVLINK_THROUGHPUT_FIELDS = {138: "tx", 139: "rx"}
NVLINK_SCOPE_ALL_LINKS = 0xFFFFFFFF  # scopeId UINT_MAX: the aggregate over every link (nvml.h)

# ECC totals (slow pass): id -> (type, scope). SBE are corrected, DBE uncorrected.
ECC_FIELDS = {
    3: ("corrected", "volatile"),
    4: ("uncorrected", "volatile"),
    5: ("corrected", "aggregate"),
    6: ("uncorrected", "aggregate"),
}
SLOW_FIELDS = (*ECC_FIELDS, *VIOLATION_FIELDS)

# nvmlValueType_t
VALUE_TYPE_DOUBLE = 0
VALUE_TYPE_UNSIGNED_INT = 1
VALUE_TYPE_UNSIGNED_LONG = 2
VALUE_TYPE_UNSIGNED_LONG_LONG = 3
VALUE_TYPE_SIGNED_LONG_LONG = 4
VALUE_TYPE_SIGNED_INT = 5
VALUE_TYPE_UNSIGNED_SHORT = 6

_UNION_MEMBER = {
    VALUE_TYPE_DOUBLE: "dVal",
    VALUE_TYPE_UNSIGNED_INT: "uiVal",
    VALUE_TYPE_UNSIGNED_LONG: "ulVal",
    VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
    VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
    VALUE_TYPE_SIGNED_INT: "siVal",
    VALUE_TYPE_UNSIGNED_SHORT: "usVal",
}

# NVML's "not available" sentinels (NVML_VALUE_NOT_AVAILABLE at each width) and
# DCGM's blank ranges (DCGM_INT32_BLANK.., DCGM_INT64_BLANK.., DCGM_FP64_BLANK):
# none of these is a measurement and none may reach the exposition.
_INT_SENTINELS = frozenset({0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF})
_INT_BLANK_RANGES = ((0x7FFFFFF0, 0x7FFFFFFF), (0x7FFFFFFFFFFFFFF0, 0x7FFFFFFFFFFFFFFF))
_FP64_BLANK = 140737488355328.0


def decode_field_value(value_type: int, value: object) -> float | None:
    """The number in a c_nvmlValue_t union given its valueType, or None for an
    unknown type or a sentinel that means "no value"."""
    member = _UNION_MEMBER.get(value_type)
    if member is None:
        return None
    return clean_value(getattr(value, member))


def clean_value(raw: float | int | None) -> float | None:
    """None for sentinels, blanks, NaN and infinities; the value as float otherwise."""
    if raw is None:
        return None
    if isinstance(raw, float):
        if not math.isfinite(raw) or raw >= _FP64_BLANK:
            return None
        return raw
    if raw in _INT_SENTINELS or any(lo <= raw <= hi for lo, hi in _INT_BLANK_RANGES):
        return None
    return float(raw)


# Clock-event (throttle) reason bits, nvmlClocksEventReason*.
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# Reasons that slow a busy GPU down; idle and the clock settings an operator
# chose are states, not slowdowns worth an event.
SLOWDOWN_REASONS = frozenset(
    {"sw_power_cap", "hw_slowdown", "sync_boost", "sw_thermal_slowdown", "hw_thermal_slowdown",
     "hw_power_brake_slowdown"}
)
GPU_IDLE = 0x1


def active_reasons(mask: int) -> frozenset[str]:
    return frozenset(name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit)


# NVLink error counters (nvmlNvLinkErrorCounter_t) read per active link.
NVLINK_ERROR_COUNTERS = {0: "replay", 1: "recovery", 2: "crc_flit", 3: "crc_data", 4: "ecc_data"}

# GPM metric ids (nvmlGpmMetricId_t) -> metric name; values are percent.
GPM_METRICS = {
    1: GPU_GRAPHICS_ACTIVE_RATIO,
    2: GPU_SM_ACTIVE_RATIO,
    3: GPU_SM_OCCUPANCY_RATIO,
    5: GPU_TENSOR_ACTIVE_RATIO,
    10: GPU_DRAM_ACTIVE_RATIO,
}


def cuda_version_text(v: int) -> str:
    """nvmlSystemGetCudaDriverVersion_v2's 12040 -> "12.4"."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def normalize_bus_id(bus_id: str | bytes) -> str:
    """NVML's "00000000:18:00.0" (8-digit domain) -> sysfs's "0000:18:00.0", lower case."""
    if isinstance(bus_id, bytes):
        bus_id = bus_id.decode()
    bus_id = bus_id.strip().lower()
    parts = bus_id.split(":")
    if len(parts) == 3 and len(parts[0]) > 4:
        parts[0] = parts[0][-4:]
    return ":".join(parts)
