"""A degraded PCIe link must look degraded (shared/reference/nvml-dcgm.md, D5): NVML's
"max" already includes the slot, so the link is compared with the GPU's own
capability, and only while the GPU is busy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.paths import Paths
from collectors.gpu.pcie_link import LinkCaps, degraded, parse_link_speed, parse_link_width, read_link_caps
from tests.doubles.fake_pynvml import FakePynvml
from tests.unit.gpu.helpers import FIXTURE_ROOT, make_collector, scrape_once
from tests.unit.gpu.test_scenarios import series, value


@pytest.mark.parametrize("text,gen", [("32.0 GT/s PCIe\n", 5), ("16 GT/s", 4), ("2.5 GT/s PCIe", 1),
                                      ("Unknown", None), ("", None), (None, None), ("7 GT/s", None)])
def test_link_speed_to_generation(text, gen) -> None:
    assert parse_link_speed(text) == gen


def test_link_width_and_verdict() -> None:
    assert parse_link_width("16\n") == 16 and parse_link_width("0") is None and parse_link_width("x") is None
    assert degraded(5, 8, 5, 16) is True
    assert degraded(4, 16, 5, 16) is True
    assert degraded(5, 16, 5, 16) is False
    assert degraded(None, 16, None, None) is None


def _slot_x8(tmp_path: Path) -> Path:
    """The fixture node with GPU 0 (0000:18:00.0) behind a x8 port (0000:17:00.0)."""
    root = tmp_path / "node"
    shutil.copytree(FIXTURE_ROOT, root, symlinks=True)
    bus = root / "sys/devices/pci0000:00"
    port = bus / "0000:17:00.0"
    port.mkdir()
    (port / "max_link_speed").write_text("32.0 GT/s PCIe\n")
    (port / "max_link_width").write_text("8\n")
    shutil.move(bus / "0000:18:00.0", port / "0000:18:00.0")
    link = root / "sys/bus/pci/devices/0000:18:00.0"
    link.unlink()
    os.symlink("../../../devices/pci0000:00/0000:17:00.0/0000:18:00.0", link)
    return root


def test_sysfs_caps_of_the_gpu_and_its_upstream_port(tmp_path: Path) -> None:
    root = _slot_x8(tmp_path)
    assert read_link_caps(Paths(root), "0000:18:00.0") == LinkCaps(5, 16, 5, 8)
    assert read_link_caps(Paths(root), "0000:2a:00.0") == LinkCaps(5, 16, None, None), "on the root bus"
    assert read_link_caps(Paths(root), "0000:77:00.0") == LinkCaps()


def _degraded_node() -> FakePynvml:
    fake = FakePynvml.load("h100_sxm_8x")
    # GPU 0: x16 GPU in a x8 slot; NVML's max is the slot's (8).
    fake.devices[0]["pcie"].update(width=8, max_width=8)
    # GPU 2: a Gen5 GPU on a Gen4 path; NVML's max gen is the path's (4).
    fake.devices[2]["pcie"].update(gen=4, max_gen=4, gpu_max_gen=5)
    # GPU 3: the same Gen4 path, but idle (its link may just have downshifted).
    fake.devices[3]["pcie"].update(gen=4, max_gen=4, gpu_max_gen=5)
    fake.devices[3]["utilization"]["gpu"] = 0
    return fake


def test_degraded_slot_and_path_under_load_idle_gpu_not_judged(tmp_path: Path) -> None:
    s = scrape_once(_degraded_node(), root=_slot_x8(tmp_path))
    assert value(s, "infernode_gpu_pcie_link_width", gpu="0", state="max") == 8, "NVML: looks fine"
    assert value(s, "infernode_gpu_pcie_link_width", gpu="0", state="device_max") == 16
    assert value(s, "infernode_gpu_pcie_link_width", gpu="0", state="upstream_max") == 8, "the slot's fault"
    assert value(s, "infernode_gpu_pcie_link_degraded", gpu="0") == 1
    assert value(s, "infernode_gpu_pcie_link_generation", gpu="2", state="device_max") == 5
    assert value(s, "infernode_gpu_pcie_link_degraded", gpu="2") == 1
    assert not series(s, "infernode_gpu_pcie_link_degraded", gpu="3"), "idle: not judged"
    for g in ("1", "4", "5", "6", "7"):
        assert value(s, "infernode_gpu_pcie_link_degraded", gpu=g) == 0


def test_verdict_held_through_idle_passes() -> None:
    fake = _degraded_node()
    c, fake, store = make_collector(fake)
    c.start()
    try:
        assert c.wait_first_poll(5)
        assert value(list(c.collect()), "infernode_gpu_pcie_link_degraded", gpu="2") == 1
        # Idle now, link downshifted to Gen1: no new verdict, the busy one stands.
        fake.devices[2]["utilization"]["gpu"] = 0
        fake.devices[2]["pcie"]["gen"] = 1
        c.refresh(slow=True)
        assert value(list(c.collect()), "infernode_gpu_pcie_link_degraded", gpu="2") == 1
        # Busy again on a repaired path: judged healthy.
        fake.devices[2]["utilization"]["gpu"] = 95
        fake.devices[2]["pcie"].update(gen=5, max_gen=5)
        c.refresh(slow=True)
        assert value(list(c.collect()), "infernode_gpu_pcie_link_degraded", gpu="2") == 0
    finally:
        c.stop()
