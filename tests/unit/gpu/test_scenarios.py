"""The GPU collector over the NVML test double, scenario by scenario, through the
real runtime (catalog validation) and exposition, compared with golden files."""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path

import pytest

from agent.exposition import render
from agent.plugins import build_catalog
from agent.runtime import CollectorRuntime
from tests.doubles.fake_pynvml import NVML_UNDELIVERED_XIDS, SCENARIOS
from tests.unit.gpu.helpers import make_collector, scrape_once

GOLDEN = Path(__file__).with_name("golden")
# Values that depend on wall time, not on the scenario.
VOLATILE = {"infernode_gpu_cache_age_seconds", "infernode_collector_duration_seconds"}
SCENARIO_NAMES = sorted(p.stem for p in SCENARIOS.glob("*.json"))


def wait_until(pred, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def run_scenario(name: str):
    c, fake, store = make_collector(name)
    catalog = build_catalog()
    rt = CollectorRuntime([c], catalog, {"gpu": 5.0})
    rt.start()
    assert c.wait_first_poll(5)
    steps = max((t["step"] for t in fake.scenario.get("timeline", [])), default=0)
    for _ in range(steps):
        step = fake.advance()
        # Events reach the store through the event thread's nvmlEventSetWait_v2.
        sent = sum(1 for t in fake.scenario.get("timeline", []) if "event" in t and t["step"] <= step
                   and not (t["event"]["type"] == "xid" and t["event"].get("data") in NVML_UNDELIVERED_XIDS))
        assert wait_until(lambda: len(store.query(0, 2**62, kinds=["gpu_xid", "gpu_ecc"])) >= sent)
        c.refresh()
    c.refresh()  # a second pass at least: GPM ratios are computed between two samples
    samples = rt.scrape()
    return c, fake, store, rt, catalog, samples


def exposition(samples, catalog) -> str:
    body, _ = render([s for s in samples if s.name not in VOLATILE], catalog)
    return body.decode()


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_golden_exposition(name: str, update_golden: bool) -> None:
    c, fake, store, rt, catalog, samples = run_scenario(name)
    try:
        assert rt.status["gpu"].dropped_total == 0, "every sample matches the catalog"
        text = exposition(samples, catalog)
    finally:
        rt.stop()
    path = GOLDEN / f"{name}.prom"
    if update_golden:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "actual"))
        pytest.fail(f"exposition differs from {path} (rerun with --update-golden if intended):\n{diff}")


def series(samples, name: str, **labels: str):
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def value(samples, name: str, **labels: str) -> float:
    found = series(samples, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {len(found)} series"
    return found[0].value


def test_h100_values_in_base_units() -> None:
    c, fake, store, rt, catalog, s = run_scenario("h100_sxm_8x")
    rt.stop()
    dev = fake.scenario["devices"][3]
    assert value(s, "infernode_gpu_count") == 8
    assert value(s, "infernode_gpu_memory_total_bytes", gpu="3") == dev["memory"]["total"]
    assert value(s, "infernode_gpu_memory_reserved_bytes", gpu="3") == dev["memory"]["reserved"]
    assert value(s, "infernode_gpu_power_watts", gpu="3") == dev["power_mw"] / 1000
    assert value(s, "infernode_gpu_power_limit_watts", gpu="3") == 700.0
    assert value(s, "infernode_gpu_energy_joules_total", gpu="3") == dev["fields"]["83"] / 1000
    assert value(s, "infernode_gpu_clock_hertz", gpu="3", clock="sm") == 1980e6
    assert value(s, "infernode_gpu_utilization_ratio", gpu="3", engine="gpu") == pytest.approx(0.87)
    assert value(s, "infernode_gpu_temperature_celsius", gpu="3", sensor="memory") == 48
    assert value(s, "infernode_gpu_violation_seconds_total", gpu="3", policy="power") == pytest.approx(1.500000003)
    assert value(s, "infernode_gpu_nvlink_errors_total", gpu="0", link="3", counter="crc_flit") == 7
    assert len(series(s, "infernode_gpu_nvlink_up", gpu="0")) == 18
    # NVLink data counters: KiB per link, summed over the 18 links, in bytes.
    assert value(s, "infernode_gpu_nvlink_data_bytes_total", gpu="2", direction="rx") == 18 * (2097152 + 2) * 1024
    assert value(s, "infernode_gpu_pcie_data_bytes_total", gpu="2", direction="tx") == 123456789002
    assert value(s, "infernode_gpu_driver_info", driver_version="550.90.07", cuda_driver_version="12.4") == 1
    # GPM ratios need two samples: they appear from the second pass on.
    assert value(s, "infernode_gpu_tensor_active_ratio", gpu="5") == pytest.approx(0.5225)


def test_gpm_appears_after_second_pass_and_samples_are_freed() -> None:
    c, fake, store = make_collector("h100_sxm_8x")
    c.start()
    assert c.wait_first_poll(5)
    try:
        assert not series(list(c.collect()), "infernode_gpu_sm_active_ratio")
        c.refresh()
        assert value(list(c.collect()), "infernode_gpu_sm_active_ratio", gpu="0") == pytest.approx(0.64)
        assert fake.live_gpm_samples == 8, "one kept sample per GPU, earlier ones freed"
    finally:
        c.stop()
    assert fake.live_gpm_samples == 0
    assert fake.live_event_sets == 0
    assert fake.refcount == 0, "nvmlShutdown balances nvmlInit"


def test_process_memory_by_unit_not_pid() -> None:
    c, fake, store, rt, catalog, s = run_scenario("h100_sxm_8x")
    rt.stop()
    mib = 1024 * 1024
    assert value(s, "infernode_gpu_process_memory_bytes", gpu="2", unit="vllm-worker@0.service") == 73000 * mib
    assert value(s, "infernode_gpu_process_memory_bytes", gpu="6", unit="vllm-worker@1.service") == 73000 * mib
    assert value(s, "infernode_gpu_process_memory_bytes", gpu="0", unit="session-3.scope") == 512 * mib
    # pid 999999 has no /proc entry under the fixture root: counted, not dropped.
    assert value(s, "infernode_gpu_process_memory_bytes", gpu="0", unit="unknown") == 256 * mib


def test_cardinality_is_bounded_and_has_no_pids() -> None:
    c, fake, store, rt, catalog, s = run_scenario("h100_sxm_8x")
    rt.stop()
    gpu_samples = [x for x in s if x.name.startswith("infernode_gpu_")]
    for x in gpu_samples:
        assert "pid" not in x.labels
        assert set(x.labels) == set(catalog.get(x.name).labels)
    per_gpu: dict[str, int] = {}
    for x in gpu_samples:
        if "gpu" in x.labels:
            per_gpu[x.labels["gpu"]] = per_gpu.get(x.labels["gpu"], 0) + 1
    assert len(per_gpu) == 8
    # Bounded by the NVLink count (18 links x 6 series: up and 5 error counters) plus
    # ~80 fixed series.
    assert max(per_gpu.values()) <= 18 * 6 + 80
    units = {x.labels["unit"] for x in series(s, "infernode_gpu_process_memory_bytes")}
    assert units == {"vllm-worker@0.service", "vllm-worker@1.service", "session-3.scope", "unknown"}


def test_no_driver_reports_nvml_down_once_and_daemon_runs_on(caplog) -> None:
    c, fake, store = make_collector("no_driver", init_retry_interval=0.05, poll_interval=0.01)
    rt = CollectorRuntime([c], build_catalog(), {"gpu": 5.0})
    with caplog.at_level("INFO", logger="test.gpu"):
        rt.start()
        assert wait_until(lambda: fake.calls["nvmlInit"] >= 3), "nvmlInit is retried"
        s = rt.scrape()
        rt.scrape()
    rt.stop()
    assert value(s, "infernode_gpu_nvml_up") == 0
    assert value(s, "infernode_collector_up", collector="gpu") == 0
    assert not [x for x in s if x.name.startswith("infernode_gpu_") and x.name != "infernode_gpu_nvml_up"]
    st = rt.status["gpu"]
    assert st.state == "no data" and "libnvidia-ml.so.1" in st.reason and "driver" in st.fix
    said = [r for r in caplog.records if "no GPU telemetry" in r.getMessage()]
    assert len(said) == 1, "reported once, not on every retry"
    rows = list(c.doctor())
    assert rows[0].item == "NVML" and rows[0].status == "fail", "the fixture has 8 NVIDIA GPUs on PCI"
    assert "install the NVIDIA driver" in rows[0].fix


def test_lost_gpu_reports_down_without_values_others_keep_reporting() -> None:
    c, fake, store = make_collector("gpu_lost")
    c.start()
    assert c.wait_first_poll(5)
    try:
        before = list(c.collect())
        assert value(before, "infernode_gpu_up", gpu="1") == 1
        fake.advance()
        c.refresh()
        c.refresh()
        s = list(c.collect())
        assert value(s, "infernode_gpu_up", gpu="1") == 0
        assert value(s, "infernode_gpu_up", gpu="0") == 1
        values_gpu1 = {x.name for x in s if x.labels.get("gpu") == "1"}
        assert values_gpu1 == {"infernode_gpu_up", "infernode_gpu_read_errors_total", "infernode_gpu_read_stuck"}, \
            "no stale values"
        assert value(s, "infernode_gpu_power_watts", gpu="0") == 520.0
        lost = store.query(0, 2**62, kinds=["gpu_lost"])
        assert len(lost) == 1 and lost[0].subject == f"gpu:{fake.scenario['devices'][1]['uuid']}"
        rows = {r.item: r for r in c.doctor()}
        assert rows[f"GPU 1 {fake.scenario['devices'][1]['uuid']}"].status == "fail"
    finally:
        c.stop()


def test_stale_cache_serves_no_values() -> None:
    c, fake, store = make_collector("l40s_pcie_1x", max_age=0.05)
    c.start()
    assert c.wait_first_poll(5)
    try:
        assert value(list(c.collect()), "infernode_gpu_up", gpu="0") in (0.0, 1.0)
        time.sleep(0.1)
        s = list(c.collect())
        assert value(s, "infernode_gpu_up", gpu="0") == 0
        assert not series(s, "infernode_gpu_power_watts"), "stale values are never served"
        c.refresh()
        assert value(list(c.collect()), "infernode_gpu_power_watts", gpu="0") == 181.25
    finally:
        c.stop()


def test_not_supported_is_cached_and_sentinels_never_exposed() -> None:
    c, fake, store = make_collector("not_supported")
    c.start()
    assert c.wait_first_poll(5)
    try:
        for _ in range(3):
            c.refresh()
        s = list(c.collect())
    finally:
        c.stop()
    assert fake.calls["nvmlDeviceGetRemappedRows"] == 1, "NOT_SUPPORTED is asked once, then skipped"
    assert fake.calls["nvmlDeviceGetEncoderUtilization"] == 1
    assert not series(s, "infernode_gpu_remapped_rows")
    assert not series(s, "infernode_gpu_utilization_ratio", engine="encoder")
    assert series(s, "infernode_gpu_utilization_ratio", engine="decoder")
    # Fallbacks: v1 memory info (no reserved), the older temperature call.
    assert series(s, "infernode_gpu_memory_used_bytes") and not series(s, "infernode_gpu_memory_reserved_bytes")
    assert value(s, "infernode_gpu_temperature_celsius", sensor="gpu") == 47
    ecc = {(x.labels["type"], x.labels["scope"]): x.value for x in series(s, "infernode_gpu_ecc_errors_total")}
    assert ecc == {("corrected", "volatile"): 0.0}, "sentinel and DCGM-blank values dropped, NOT_SUPPORTED skipped"
    assert value(s, "infernode_gpu_read_errors_total") == 0, "NOT_SUPPORTED is not an error"


def test_xid_counters_and_events_with_actions() -> None:
    c, fake, store, rt, catalog, s = run_scenario("xid")
    rt.stop()
    u0, u1 = (d["uuid"] for d in fake.scenario["devices"])
    # XID 79 never reaches NVML's event set (NVIDIA/DCGM#162): from NVML alone it is
    # not seen at all; the kernel-log source counts it (test_kernel_log_xids.py).
    assert not series(s, "infernode_gpu_xid_errors_total", gpu="0", xid="79")
    assert value(s, "infernode_gpu_xid_errors_total", gpu="1", xid="13", action="restart_app") == 2
    xids = store.query(0, 2**62, kinds=["gpu_xid"])
    assert sorted((e.subject, e.attributes["xid"], e.attributes["action"], e.attributes["source"])
                  for e in xids) == [(f"gpu:{u1}", 13, "restart_app", "nvml")] * 2
    ecc = store.query(0, 2**62, subjects=[f"gpu:{u0}"], kinds=["gpu_ecc"])
    assert len(ecc) == 1 and ecc[0].attributes["type"] == "double_bit"
    now = time.time_ns()
    assert all(now - 60e9 < e.start_ns <= now for e in xids), "stamped on the realtime clock"


def test_thermal_throttle_window_and_clock_drop_events() -> None:
    c, fake, store = make_collector("thermal_throttle")
    c.start()
    assert c.wait_first_poll(5)
    try:
        uuid = fake.scenario["devices"][0]["uuid"]
        fake.advance()
        c.refresh()
        s = list(c.collect())
        assert value(s, "infernode_gpu_clock_event_reason_active", reason="hw_thermal_slowdown") == 1
        assert value(s, "infernode_gpu_clock_hertz", clock="sm") == 1215e6
        assert not store.query(0, 2**62, kinds=["gpu_throttle"]), "written when the window ends"
        open_now = c.ctx.services.gpu_open_events()
        assert {(e.kind, e.attributes.get("reason")) for e in open_now} == {
            ("gpu_throttle", "hw_thermal_slowdown"), ("gpu_clock_drop", None)}
        fake.advance()
        c.refresh()
        s = list(c.collect())
        assert value(s, "infernode_gpu_clock_event_reason_active", reason="hw_thermal_slowdown") == 0
    finally:
        c.stop()
    (thr,) = store.query(0, 2**62, subjects=[f"gpu:{uuid}"], kinds=["gpu_throttle"])
    assert thr.attributes["reason"] == "hw_thermal_slowdown" and thr.attributes["state"] == "ended"
    assert thr.start_ns < thr.end_ns and thr.magnitude == pytest.approx(thr.duration_s)
    (drop,) = store.query(0, 2**62, kinds=["gpu_clock_drop"])
    assert drop.magnitude == pytest.approx((1980 - 1215) * 1e6)
    assert drop.attributes["from_hz"] == 1980e6 and drop.attributes["to_hz"] == 1215e6


def test_scenarios_are_valid_json_with_descriptions() -> None:
    for name in SCENARIO_NAMES:
        doc = json.loads((SCENARIOS / f"{name}.json").read_text())
        assert doc["description"]


def test_one_failing_call_does_not_drop_the_rest_of_the_gpu() -> None:
    from tests.doubles.fake_pynvml import FakePynvml

    fake = FakePynvml.load("l40s_pcie_1x")
    fake.devices[0]["failing"] = {"nvmlDeviceGetPowerUsage": "NVML_ERROR_UNKNOWN",
                                  "nvmlDeviceGetFieldValues": "NVML_ERROR_NO_PERMISSION"}
    c, fake, store = make_collector(fake)
    c.start()
    assert c.wait_first_poll(5)
    try:
        c.refresh()
        s = list(c.collect())
    finally:
        c.stop()
    assert value(s, "infernode_gpu_up", gpu="0") == 1
    assert not series(s, "infernode_gpu_power_watts") and not series(s, "infernode_gpu_energy_joules_total")
    assert value(s, "infernode_gpu_memory_used_bytes") == 20000 * 1024 * 1024
    assert value(s, "infernode_gpu_power_limit_watts") == 350
    # Errors are not NOT_SUPPORTED: they are retried every pass and counted.
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 2
    assert value(s, "infernode_gpu_read_errors_total") == 2 + 2 * 2  # power x2, fast+slow field reads x2


def test_real_pynvml_on_a_host_without_driver() -> None:
    """The default path (no double): pynvml imported in start(), the real library
    load fails here, and the collector says so."""
    import ctypes.util

    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("this host has libnvidia-ml; `make gpu-check` covers it")
    from agent.collector import CollectorContext, NoDataError
    from agent.events import EventStore
    from agent.paths import Paths
    from collectors.gpu.collector import GpuCollector, GpuSettings

    ctx = CollectorContext(paths=Paths("/"), events=EventStore(), settings=GpuSettings())
    c = GpuCollector(ctx)
    c.start()
    assert c.wait_first_poll(5)
    try:
        with pytest.raises(NoDataError) as e:
            list(c.collect())
    finally:
        c.stop()
    assert "libnvidia-ml.so.1" in e.value.reason
    assert [x.name for x in e.value.samples] == ["infernode_gpu_nvml_up"]


def test_old_driver_throttle_reasons_fallback() -> None:
    c, fake, store = make_collector("not_supported")
    c.start()
    assert c.wait_first_poll(5)
    try:
        c.refresh()
        s = list(c.collect())
    finally:
        c.stop()
    assert value(s, "infernode_gpu_clock_event_reason_active", reason="sw_power_cap") == 1
    assert fake.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 1


def test_gpu_settings_are_validated_with_key_paths() -> None:
    from agent.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as e:
        parse_config({"collectors": {"gpu": {"poll_interval": "0s", "clock_drop_ratio": 2, "pol_interval": 1}}},
                     "test.yaml")
    text = str(e.value)
    assert "test.yaml: collectors.gpu.poll_interval" in text
    assert "collectors.gpu.clock_drop_ratio" in text
    assert "collectors.gpu.pol_interval: unknown key" in text
    cfg = parse_config({"collectors": {"gpu": {"poll_interval": "250ms", "max_age": "3s"}}})
    assert cfg.collectors.gpu.poll_interval == 0.25 and cfg.collectors.gpu.max_age == 3.0


def test_wedged_nvml_call_never_blocks_the_scrape_nor_serves_stale_values() -> None:
    c, fake, store = make_collector("l40s_pcie_1x", poll_interval=0.02, max_age=0.3)
    c.start()
    assert c.wait_first_poll(5)
    assert value(list(c.collect()), "infernode_gpu_up", gpu="0") == 1
    fake.devices[0]["hang"] = {"nvmlDeviceGetPowerUsage": 1.5}
    time.sleep(0.5)  # the poll thread is now stuck inside NVML
    t0 = time.monotonic()
    s = list(c.collect())
    assert time.monotonic() - t0 < 0.2
    assert value(s, "infernode_gpu_up", gpu="0") == 0
    assert not series(s, "infernode_gpu_memory_used_bytes")
    t0 = time.monotonic()
    c.stop()
    assert time.monotonic() - t0 < 3.5, "stop is bounded even with NVML stuck"


def test_nvlink_throughput_survives_a_down_link_and_dl_ecc_is_read() -> None:
    from tests.doubles.fake_pynvml import FakePynvml
    fake = FakePynvml.load("h100_sxm_8x")
    fake.devices[1]["nvlink"]["down"] = [4]
    fake.devices[1]["nvlink"]["errors"] = {"2": [0, 0, 0, 0, 9]}
    s = scrape_once(fake)
    # One all-links read per direction: the 17 links that are up, in bytes.
    assert value(s, "infernode_gpu_nvlink_data_bytes_total", gpu="1", direction="rx") == 17 * 2097153 * 1024
    assert value(s, "infernode_gpu_nvlink_up", gpu="1", link="4") == 0
    assert value(s, "infernode_gpu_nvlink_errors_total", gpu="1", link="2", counter="ecc_data") == 9
    assert value(s, "infernode_gpu_nvlink_data_bytes_total", gpu="0", direction="rx") == 18 * 2097152 * 1024


def test_inventory_power_bounds_and_temperature_thresholds() -> None:
    c, fake, store, rt, catalog, s = run_scenario("h100_sxm_8x")
    rt.stop()
    assert value(s, "infernode_gpu_inventory_info", gpu="4", serial="1654223010004", vbios_version="96.00.99.00.01",
                 inforom_image_version="G520.0200.00.05", board_part_number="692-2G520-0200-000") == 1
    assert value(s, "infernode_gpu_power_limit_bound_watts", gpu="4", bound="min") == 200.0
    assert value(s, "infernode_gpu_power_limit_bound_watts", gpu="4", bound="default") == 700.0
    assert value(s, "infernode_gpu_temperature_threshold_celsius", gpu="4", threshold="shutdown") == 92
    calls = fake.calls["nvmlDeviceGetSerial"]
    assert calls == 8, "read once per GPU when probed, not every pass"
    # A board that answers none of it still has its info series, with empty values.
    c, fake, store, rt, catalog, s = run_scenario("l40s_pcie_1x")
    rt.stop()
    assert value(s, "infernode_gpu_inventory_info", gpu="0", serial="", vbios_version="") == 1
    assert not series(s, "infernode_gpu_power_limit_bound_watts")
