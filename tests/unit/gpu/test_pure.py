"""Pure parts of the GPU collector: field decoding, XID table, throttle windows."""

from __future__ import annotations

import ctypes

import pynvml
import pytest

from collectors.gpu import fields as F
from collectors.gpu.events import ecc_event, xid_event, xid_of
from collectors.gpu.nvml_reader import Device
from collectors.gpu.throttle import ThrottleTracker
from collectors.gpu.xid import classify

S = 1_000_000_000


def union(member: str, v):
    u = pynvml.c_nvmlValue_t()
    setattr(u, member, v)
    return u


def test_decode_field_value_reads_the_member_named_by_value_type() -> None:
    assert F.decode_field_value(pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, union("ullVal", 123456789012)) == 123456789012
    assert F.decode_field_value(pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, union("uiVal", 45)) == 45
    assert F.decode_field_value(pynvml.NVML_VALUE_TYPE_DOUBLE, union("dVal", 1.5)) == 1.5
    assert F.decode_field_value(pynvml.NVML_VALUE_TYPE_SIGNED_INT, union("siVal", -3)) == -3
    assert F.decode_field_value(99, union("ullVal", 1)) is None


@pytest.mark.parametrize("raw", [0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 0x7FFFFFF0, 0x7FFFFFFFFFFFFFF0,
                                 float("nan"), float("inf"), 140737488355328.0, None])
def test_sentinels_and_blanks_are_not_values(raw) -> None:
    assert F.clean_value(raw) is None


def test_ordinary_values_pass() -> None:
    assert F.clean_value(0) == 0.0
    assert F.clean_value(2**40) == float(2**40)
    assert F.clean_value(0.25) == 0.25


def test_constants_match_pynvml() -> None:
    assert F.FI_MEMORY_TEMP == pynvml.NVML_FI_DEV_MEMORY_TEMP
    assert F.FI_TOTAL_ENERGY == pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION
    assert F.PERF_POLICIES[pynvml.NVML_PERF_POLICY_THERMAL] == "thermal"
    assert F.PERF_POLICIES[pynvml.NVML_PERF_POLICY_TOTAL_BASE_CLOCKS] == "total_base_clocks"
    assert F.PCIE_BYTES_FIELDS[pynvml.NVML_FI_DEV_PCIE_COUNT_RX_BYTES] == "rx"
    assert F.NVLINK_THROUGHPUT_FIELDS[pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX] == "tx"
    assert F.ECC_FIELDS[pynvml.NVML_FI_DEV_ECC_DBE_AGG_TOTAL] == ("uncorrected", "aggregate")
    assert F.CLOCK_EVENT_REASONS[pynvml.nvmlClocksEventReasonHwThermalSlowdown] == "hw_thermal_slowdown"
    assert F.CLOCK_EVENT_REASONS[pynvml.nvmlClocksEventReasonSwPowerCap] == "sw_power_cap"
    assert F.NVLINK_ERROR_COUNTERS[pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT] == "crc_flit"
    assert set(F.GPM_METRICS) == {pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL, pynvml.NVML_GPM_METRIC_SM_UTIL,
                                  pynvml.NVML_GPM_METRIC_SM_OCCUPANCY, pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL,
                                  pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL}
    from collectors.gpu import nvml_reader as R
    assert R.EVENT_XID == pynvml.nvmlEventTypeXidCriticalError
    assert R.EVENT_DOUBLE_BIT_ECC == pynvml.nvmlEventTypeDoubleBitEccError
    assert R.ERROR_GPU_IS_LOST == pynvml.NVML_ERROR_GPU_IS_LOST
    assert R.ERROR_TIMEOUT == pynvml.NVML_ERROR_TIMEOUT
    assert R.ERROR_LIBRARY_NOT_FOUND == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND


def test_active_reasons_and_text_helpers() -> None:
    assert F.active_reasons(0x44) == {"sw_power_cap", "hw_thermal_slowdown"}
    assert F.cuda_version_text(12040) == "12.4"
    assert F.cuda_version_text(11080) == "11.8"
    assert F.normalize_bus_id("00000000:1A:00.0") == "0000:1a:00.0"
    assert F.normalize_bus_id(b"0000:3b:00.0") == "0000:3b:00.0"


@pytest.mark.parametrize("xid,action", [(79, "reboot_node"), (13, "restart_app"), (31, "restart_app"),
                                        (48, "reset_gpu"), (95, "reset_gpu"), (94, "restart_app"),
                                        (63, "informational"), (119, "reset_gpu")])
def test_xid_actions(xid: int, action: str) -> None:
    assert classify(xid).action == action and classify(xid).known


def test_unknown_xid_is_informational_but_marked_unknown() -> None:
    info = classify(9999)
    assert info.action == "informational" and not info.known


def test_nvml_event_data_to_xid_and_ecc_events() -> None:
    dev = Device(2, None, "GPU-x", "NVIDIA H100", "00000000:18:00.0")
    info = xid_of(pynvml.nvmlEventTypeXidCriticalError, 79)
    assert info is not None and info.xid == 79
    ev = xid_event(dev, info, 5, "nvml")
    assert ev.kind == "gpu_xid" and ev.subject == "gpu:GPU-x" and ev.attributes["action"] == "reboot_node"
    assert ev.attributes["gpu"] == 2 and ev.attributes["pci_bus_id"] == "00000000:18:00.0"
    assert xid_of(pynvml.nvmlEventTypeSingleBitEccError, 0) is None
    ev = ecc_event(dev, pynvml.nvmlEventTypeSingleBitEccError, 5)
    assert ev is not None and ev.kind == "gpu_ecc" and ev.attributes["type"] == "single_bit"
    assert ecc_event(dev, pynvml.nvmlEventTypePState, 5) is None
    assert xid_of(pynvml.nvmlEventTypePState, 0) is None


HW_THERMAL = 0x40
IDLE = 0x1


def test_throttle_window_is_one_event_with_start_and_end() -> None:
    t = ThrottleTracker("gpu:G", segment_s=100)
    assert t.update(1 * S, 0, 1980e6) == []
    assert t.update(2 * S, HW_THERMAL, 1980e6) == []
    assert [e.kind for e in t.open_events(3 * S)] == ["gpu_throttle"]
    (ev,) = t.update(5 * S, 0, 1980e6)
    assert (ev.kind, ev.start_ns, ev.end_ns, ev.magnitude) == ("gpu_throttle", 2 * S, 5 * S, 3.0)
    assert ev.attributes == {"reason": "hw_thermal_slowdown", "window_start_ns": 2 * S, "state": "ended"}
    assert t.open_events(6 * S) == []


def test_long_window_is_written_in_non_overlapping_segments() -> None:
    t = ThrottleTracker("gpu:G", segment_s=5)
    t.update(0, HW_THERMAL, None)
    out = []
    for sec in range(1, 13):
        out += t.update(sec * S, HW_THERMAL, None)
    out += t.update(13 * S, 0, None)
    spans = [(e.start_ns // S, e.end_ns // S, e.attributes["state"]) for e in out]
    assert spans == [(0, 5, "ongoing"), (5, 10, "ongoing"), (10, 13, "ended")]
    assert {e.attributes["window_start_ns"] for e in out} == {0}


def test_idle_and_operator_clock_settings_are_not_throttle_windows() -> None:
    t = ThrottleTracker("gpu:G")
    assert t.update(1 * S, IDLE | 0x2, 300e6) == []
    assert t.update(2 * S, 0, 300e6) == []


def test_clock_drop_against_recent_busy_level() -> None:
    t = ThrottleTracker("gpu:G", drop_ratio=0.1, segment_s=100)
    t.update(1 * S, 0, 1980e6)
    t.update(2 * S, 0, 1900e6)  # within 10%: no drop
    assert t.open_events(2 * S) == []
    t.update(3 * S, 0, 1500e6)
    t.update(4 * S, 0, 1300e6)
    (ev,) = t.update(6 * S, 0, 1980e6)
    assert ev.kind == "gpu_clock_drop" and (ev.start_ns, ev.end_ns) == (3 * S, 6 * S)
    assert ev.magnitude == pytest.approx(680e6) and ev.attributes["to_hz"] == 1300e6


def test_idle_clock_fall_is_not_a_drop() -> None:
    t = ThrottleTracker("gpu:G")
    t.update(1 * S, 0, 1980e6)
    assert t.update(2 * S, IDLE, 345e6) == []
    assert t.open_events(2 * S) == []


def test_close_all_ends_open_windows() -> None:
    t = ThrottleTracker("gpu:G")
    t.update(1 * S, 0x4, 1980e6)
    (ev,) = t.close_all(2 * S)
    assert ev.attributes["reason"] == "sw_power_cap" and ev.end_ns == 2 * S
    assert t.close_all(3 * S) == []


def test_fake_handles_are_real_pynvml_types() -> None:
    from tests.doubles.fake_pynvml import FakePynvml
    fake = FakePynvml.load("l40s_pcie_1x")
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(h, pynvml.c_nvmlDevice_t)
    assert isinstance(fake.nvmlDeviceGetPciInfo_v3(h), pynvml.nvmlPciInfo_t)
    assert isinstance(fake.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2), pynvml.c_nvmlMemory_v2_t)
    assert ctypes.sizeof(fake.nvmlDeviceGetFieldValues(h, [83])[0]) == ctypes.sizeof(pynvml.c_nvmlFieldValue_t)
    with pytest.raises(pynvml.NVMLError_NotSupported) as e:
        fake.nvmlDeviceGetNvLinkState(h, 0)
    assert e.value.value == pynvml.NVML_ERROR_NOT_SUPPORTED
    with pytest.raises(AttributeError, match="does not implement"):
        fake.nvmlDeviceGetBAR1MemoryInfo(h)
