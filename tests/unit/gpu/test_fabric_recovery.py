"""Fabric state and NVIDIA's recovery action (shared/reference/nvml-dcgm.md, section 5):
a stopped fabric manager must show although every other metric looks healthy, and
a recovery action of drain or reboot must reach the worker supervisor's rule."""

from __future__ import annotations

from agent.worker import gpufaults
from tests.doubles.fake_pynvml import FakePynvml
from tests.unit.gpu.helpers import make_collector, scrape_once
from tests.unit.gpu.test_scenarios import series, value


def test_fabric_manager_down_reads_fabric_not_up_while_the_gpu_looks_healthy() -> None:
    fake = FakePynvml.load("h100_sxm_8x")
    for d in fake.devices:
        d["fabric"] = {"state": 1, "status": 0}  # not_started: no fabric manager to register with
    s = scrape_once(fake)
    for g in map(str, range(8)):
        assert value(s, "infernode_gpu_up", gpu=g) == 1, "every other signal looks healthy"
        assert value(s, "infernode_gpu_fabric_up", gpu=g) == 0
        assert value(s, "infernode_gpu_fabric_state", gpu=g, state="not_started") == 1
        assert value(s, "infernode_gpu_fabric_state", gpu=g, state="completed") == 0


def test_fabric_registration_failed_and_no_fabric() -> None:
    fake = FakePynvml.load("h100_sxm_8x")
    fake.devices[1]["fabric"] = {"state": 3, "status": 999}  # completed, with an error
    s = scrape_once(fake)
    assert value(s, "infernode_gpu_fabric_up", gpu="0") == 1
    assert value(s, "infernode_gpu_fabric_up", gpu="1") == 0
    c, fake, store = make_collector("l40s_pcie_1x")  # a PCIe board: on no fabric
    c.start()
    try:
        assert c.wait_first_poll(5)
        assert not series(list(c.collect()), "infernode_gpu_fabric_up")
    finally:
        c.stop()


def test_recovery_action_change_is_exported_and_stops_the_gpus_worker() -> None:
    c, fake, store = make_collector("h100_sxm_8x")
    c.start()
    try:
        assert c.wait_first_poll(5)
        assert value(list(c.collect()), "infernode_gpu_recovery_action", gpu="6", action="none") == 1
        assert not store.query(0, 2**62, kinds=["gpu_recovery_action"]), "none at start is no change"
        fake.devices[6]["fields"]["230"] = 4  # drain_and_reset (XID 154 on the GPU)
        c.refresh(slow=False)
        s = list(c.collect())
        assert value(s, "infernode_gpu_recovery_action", gpu="6", action="drain_and_reset") == 1
        assert not series(s, "infernode_gpu_recovery_action", gpu="6", action="none")
        ev = store.query(0, 2**62, kinds=["gpu_recovery_action"])
        assert [(e.attributes["gpu"], e.attributes["action"], e.attributes["previous"]) for e in ev] == [
            (6, "drain_and_reset", "none")]
        addresses = [d["pci_bus_id"] for d in fake.devices]
        assert gpufaults.worker_fault(ev, [6], addresses) == "recovery_drain_and_reset"
        assert gpufaults.worker_fault(ev, [5], addresses) is None
        c.refresh(slow=False)
        assert len(store.query(0, 2**62, kinds=["gpu_recovery_action"])) == 1, "one event per change"
    finally:
        c.stop()
