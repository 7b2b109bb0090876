""""Not supported" is not forever (shared/reference/nvml-dcgm.md D8): MIG mode turns
the parent's utilization off and back on, a periodic re-probe finds what a GPU
answers again, and throttle time comes from the field ids NVML documents in ns,
with the deprecated call as the fallback (D7)."""

from __future__ import annotations

import types

import pytest

from collectors.gpu.nvml_reader import NvmlReader
from tests.doubles.fake_pynvml import FakePynvml
from tests.unit.gpu.helpers import make_collector, scrape_once
from tests.unit.gpu.test_scenarios import series, value

MIB = 1 << 20


def _mig_node() -> FakePynvml:
    fake = FakePynvml.load("h100_sxm_8x")
    fake.devices[0]["mig"] = {"current": 1, "pending": 1, "instances": [
        {"gpu_instance": 1, "compute_instance": 0, "memory": {"total": 40960 * MIB, "used": 1024 * MIB,
                                                              "free": 39936 * MIB, "reserved": 0}},
        {"gpu_instance": 2, "compute_instance": 0, "memory": {"total": 20480 * MIB, "used": 5 * MIB,
                                                              "free": 20475 * MIB, "reserved": 0}}]}
    fake.devices[1]["mig"] = {"current": 0, "pending": 0}
    return fake


def test_mig_mode_instances_and_parent_utilization_back_when_mig_goes_off() -> None:
    c, fake, store = make_collector(_mig_node())
    c.start()
    try:
        assert c.wait_first_poll(5)
        c.refresh(slow=False)  # MIG mode is read in the slow pass; instances from then on
        s = list(c.collect())
        assert value(s, "infernode_gpu_mig_mode", gpu="0", state="current") == 1
        assert value(s, "infernode_gpu_mig_mode", gpu="1", state="current") == 0
        assert value(s, "infernode_gpu_mig_memory_used_bytes", gpu="0", gpu_instance="2",
                     compute_instance="0") == 5 * MIB
        assert value(s, "infernode_gpu_mig_memory_total_bytes", gpu="0", gpu_instance="1",
                     compute_instance="0") == 40960 * MIB
        assert not series(s, "infernode_gpu_mig_memory_used_bytes", gpu="1")
        assert not series(s, "infernode_gpu_utilization_ratio", gpu="0", engine="gpu"), "not supported on a MIG parent"
        util1 = fake.devices[1]["utilization"]["gpu"] / 100
        assert value(s, "infernode_gpu_utilization_ratio", gpu="1", engine="gpu") == pytest.approx(util1)
        # MIG turned off (and the GPU reset): the next slow pass sees it and probes again.
        fake.devices[0]["mig"] = {"current": 0, "pending": 0}
        c.refresh(slow=True)
        c.refresh(slow=True)
        s = list(c.collect())
        assert value(s, "infernode_gpu_utilization_ratio", gpu="0", engine="gpu") == pytest.approx(0.9)
        assert not series(s, "infernode_gpu_mig_memory_used_bytes", gpu="0")
        assert value(s, "infernode_gpu_mig_mode", gpu="0", state="current") == 0
    finally:
        c.stop()


def test_periodic_reprobe_finds_a_call_that_answers_again() -> None:
    fake = FakePynvml.load("l40s_pcie_1x")
    fake.devices[0]["not_supported"] = ["nvmlDeviceGetPowerUsage"]
    c, fake, store = make_collector(fake, reprobe_interval=3600)
    c.start()
    try:
        assert c.wait_first_poll(5)
        assert not series(list(c.collect()), "infernode_gpu_power_watts")
        fake.devices[0]["not_supported"] = []
        c.refresh(slow=True)
        assert not series(list(c.collect()), "infernode_gpu_power_watts"), "cached until the re-probe"
        calls = fake.calls["nvmlDeviceGetPowerUsage"]
        c.settings.reprobe_interval = 0.001
        c.refresh(slow=True)
        assert fake.calls["nvmlDeviceGetPowerUsage"] == calls + 1
        assert series(list(c.collect()), "infernode_gpu_power_watts")
    finally:
        c.stop()


def test_driver_change_reprobes_every_gpu() -> None:
    fake = FakePynvml.load("l40s_pcie_1x")
    fake.devices[0]["not_supported"] = ["nvmlDeviceGetPowerUsage"]
    c, fake, store = make_collector(fake)
    c.start()
    try:
        assert c.wait_first_poll(5)
        fake.devices[0]["not_supported"] = []
        fake.scenario["driver_version"] = "560.35.03"
        c._check_driver()
        c.refresh(slow=True)
        s = list(c.collect())
        assert series(s, "infernode_gpu_power_watts")
        assert value(s, "infernode_gpu_driver_info", driver_version="560.35.03", cuda_driver_version="12.4") == 1
    finally:
        c.stop()


def test_violation_time_from_the_documented_ns_fields_with_the_deprecated_call_as_fallback() -> None:
    fake = FakePynvml.load("h100_sxm_8x")
    f = fake.devices[0]["fields"]
    f["74"], f["269"], f["270"], f["271"] = 7_000_000_000, 2_000_000_000, 500_000_000, 0
    s = scrape_once(fake)
    v = {x.labels["policy"]: x.value for x in series(s, "infernode_gpu_violation_seconds_total", gpu="0")}
    assert v["power"] == 7.0, "FI 74, not the deprecated call's 1.5 s"
    assert v["sw_thermal"] == 2.0 and v["hw_thermal"] == 0.5 and v["hw_power_brake"] == 0
    assert "thermal" not in v, "replaced by sw_thermal/hw_thermal: never both"
    assert v["board_limit"] == 0 and v["total_app_clocks"] == 2.5, "no field twin: the deprecated call"
    w = {x.labels["policy"]: x.value for x in series(s, "infernode_gpu_violation_seconds_total", gpu="3")}
    assert w["power"] == pytest.approx(1.500000003) and "thermal" in w and "sw_thermal" not in w, "fallback"


def test_moved_field_ids_are_not_trusted_from_bindings_that_number_them_otherwise() -> None:
    older = types.SimpleNamespace(NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN=251,
                                  NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN=252,
                                  NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN=253)
    fields = NvmlReader(older).slow_fields
    assert 74 in fields and 76 in fields and not {269, 270, 271} & set(fields)
    assert {269, 270, 271} <= set(NvmlReader(FakePynvml.load("l40s_pcie_1x")).slow_fields)
