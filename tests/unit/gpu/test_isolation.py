"""One wedged GPU must not blank the others (shared/reference/nvml-dcgm.md, D2):
a hung NVML call on GPU 0 of 8 leaves GPUs 1-7 read as usual, and only GPU 0 goes
stale and reads `infernode_gpu_read_stuck 1`."""

from __future__ import annotations

import time

from tests.unit.gpu.helpers import make_collector
from tests.unit.gpu.test_scenarios import value, wait_until


def _up(samples, gpu: int) -> float:
    return value(samples, "infernode_gpu_up", gpu=str(gpu))


def test_one_hung_gpu_goes_stale_alone_and_reads_stuck() -> None:
    c, fake, store = make_collector("h100_sxm_8x", poll_interval=0.05, max_age=0.4, stuck_after=0.3)
    c.start()
    try:
        assert c.wait_first_poll(5)
        assert wait_until(lambda: all(_up(list(c.collect()), g) == 1 for g in range(8)))
        # A GSP timeout as the poll sees it: one call on GPU 0 blocks for 2 s.
        fake.devices[0]["hang"] = {"nvmlDeviceGetPowerUsage": 2.0}
        assert wait_until(lambda: value(list(c.collect()), "infernode_gpu_read_stuck", gpu="0") == 1, 2)
        s = list(c.collect())
        assert _up(s, 0) == 0
        assert not [x for x in s if x.name == "infernode_gpu_power_watts" and x.labels["gpu"] == "0"]
        for g in range(1, 8):
            assert _up(s, g) == 1, f"GPU {g} is read while GPU 0 hangs"
            assert value(s, "infernode_gpu_read_stuck", gpu=str(g)) == 0
        # The other GPUs keep being polled, not just served once.
        before = value(s, "infernode_gpu_power_watts", gpu="5")
        fake.devices[5]["power_mw"] = 333000
        assert wait_until(lambda: value(list(c.collect()), "infernode_gpu_power_watts", gpu="5") == 333.0)
        assert before != 333.0
        # The hang ends: GPU 0 answers again and is no longer stuck.
        fake.devices[0]["hang"] = {}
        assert wait_until(lambda: _up(list(c.collect()), 0) == 1, 4)
        assert value(list(c.collect()), "infernode_gpu_read_stuck", gpu="0") == 0
    finally:
        t0 = time.monotonic()
        c.stop()
        assert time.monotonic() - t0 < 3.5


def test_stop_with_a_hung_gpu_is_bounded_and_leaves_nvml_initialised() -> None:
    c, fake, store = make_collector("h100_sxm_8x", poll_interval=0.05, max_age=0.4, stuck_after=0.3)
    c.start()
    assert c.wait_first_poll(5)
    fake.devices[3]["hang"] = {"nvmlDeviceGetUtilizationRates": 3.0}
    assert wait_until(lambda: value(list(c.collect()), "infernode_gpu_read_stuck", gpu="3") == 1, 2)
    t0 = time.monotonic()
    c.stop()
    assert time.monotonic() - t0 < 3.5
    # nvmlShutdown under a running call is not safe: NVML stays initialised.
    assert fake.calls["nvmlShutdown"] == 0


def test_doctor_names_the_stuck_gpu_and_the_xid_sources() -> None:
    c, fake, store = make_collector("h100_sxm_8x", poll_interval=0.05, max_age=0.4, stuck_after=0.3)
    c.start()
    try:
        assert c.wait_first_poll(5)
        fake.devices[2]["hang"] = {"nvmlDeviceGetPowerUsage": 2.0}
        assert wait_until(lambda: value(list(c.collect()), "infernode_gpu_read_stuck", gpu="2") == 1, 2)
        rows = {r.item: r for r in c.doctor()}
    finally:
        c.stop()
    stuck = rows[f"GPU 2 {fake.devices[2]['uuid']}"]
    assert stuck.status == "fail" and "has not returned" in stuck.detail and "XID 119/120" in stuck.fix
    assert rows[f"GPU 1 {fake.devices[1]['uuid']}"].status == "ok"
    assert rows["events"].status == "ok" and "8 GPU(s)" in rows["events"].detail
    # The fixture root has no /dev/kmsg: the kernel-log row says so and what it costs.
    assert rows["kernel log"].status == "warn" and "79, 119 and 120" in rows["kernel log"].detail
