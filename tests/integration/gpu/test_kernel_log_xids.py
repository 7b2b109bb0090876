"""XIDs from the real kernel log: the test writes lines in the driver's format into
/dev/kmsg (as root) and the GPU collector, over the NVML double for its GPUs,
reads them back from the kernel. XID 79 never reaches NVML's event set, so this
is the only way the agent sees it; the worker supervisor's rule reacts to it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent.worker import gpufaults
from tests.unit.gpu.helpers import FIXTURE_ROOT, make_collector
from tests.unit.gpu.test_scenarios import series, value, wait_until

pytestmark = pytest.mark.skipif(not os.access("/dev/kmsg", os.W_OK), reason="needs root to write /dev/kmsg")


def _root(tmp_path: Path) -> Path:
    # The fixture node's sysfs and procfs, the real /dev (for /dev/kmsg).
    for name in ("sys", "proc"):
        (tmp_path / name).symlink_to(FIXTURE_ROOT / name)
    (tmp_path / "dev").symlink_to("/dev")
    return tmp_path


def _kmsg(line: str) -> None:
    # A fresh open per line: /dev/kmsg rate-limits writes per open file.
    with open("/dev/kmsg", "w") as f:
        f.write(f"<3>{line}\n")


def _count(c, **labels: str) -> float:
    found = series(list(c.collect()), "infernode_gpu_xid_errors_total", **labels)
    return sum(s.value for s in found)


def test_kernel_log_xids_are_counted_attributed_and_stop_the_worker(tmp_path: Path) -> None:
    c, fake, store = make_collector("h100_sxm_8x", root=_root(tmp_path))
    c.start()
    try:
        assert c.wait_first_poll(5)
        assert value(list(c.collect()), "infernode_gpu_kernel_log_up") == 1
        # GPU 2 is 00000000:3A:00.0; the driver logs domain:bus:device.
        _kmsg("NVRM: Xid (PCI:0000:3a:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.")
        _kmsg("NVRM: Xid (PCI:0000:db:00): 119, pid=1582259, name=nvc:[driver], Timeout after 6s of waiting "
              "for RPC response from GPU7 GSP! Expected function 76 (GSP_RM_CONTROL) (0x20802a02 0x8).")
        _kmsg("nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 20034, Fatal, Link 30 LTSSM Fault Up")
        _kmsg("NVRM: Xid (PCI:0000:ee:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.")
        _kmsg("NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.90.07")
        # Four NVIDIA lines written (the module-loading line is not one): all read.
        assert wait_until(lambda: c._kmsg is not None and c._kmsg.lines >= 4, 5)
        assert _count(c, gpu="2", xid="79", action="reboot_node") == 1
        assert _count(c, gpu="7", xid="119", action="reset_gpu") == 1
        assert _count(c) == 2, "no other GPU, and no other line, counted"
        s = list(c.collect())
        assert value(s, "infernode_nvswitch_sxid_errors_total", switch="2", sxid="20034", severity="fatal") == 1
        assert value(s, "infernode_gpu_events_unattributed_total", source="kernel_log") == 1, "0000:ee:00"
        ev = [e for e in store.query(0, 2**62, kinds=["gpu_xid"])]
        assert sorted((e.attributes["gpu"], e.attributes["xid"], e.attributes["source"]) for e in ev) == [
            (2, 79, "kernel_log"), (7, 119, "kernel_log")]
        assert "fallen off the bus" in str(next(e for e in ev if e.attributes["xid"] == 79).attributes["detail"])
        # The supervisor's rule: 79 stops the worker on GPU 2 and marks the node, not the worker on GPU 3.
        addresses = [d["pci_bus_id"] for d in fake.devices]
        assert gpufaults.worker_fault(ev, [2], addresses) == "xid_79"
        assert gpufaults.worker_fault(ev, [3], addresses) is None
        assert gpufaults.node_fault(ev) == "xid_79"
    finally:
        c.stop()


def test_one_xid_from_nvml_and_the_kernel_log_is_counted_once(tmp_path: Path) -> None:
    c, fake, store = make_collector("xid", root=_root(tmp_path))
    c.start()
    try:
        assert c.wait_first_poll(5)
        fake.advance()  # NVML delivers XID 13 on GPU 1 (and not the 79 on GPU 0)
        assert wait_until(lambda: _count(c, gpu="1", xid="13") == 1)
        _kmsg("NVRM: Xid (PCI:0000:2a:00): 13, pid=4242, name=python3, Graphics Exception: ESR 0x505648=0x2")
        t0 = time.monotonic()
        assert wait_until(lambda: c._kmsg is not None and c._kmsg.lines >= 1, 5)
        assert time.monotonic() - t0 < 5
        assert _count(c, gpu="1", xid="13") == 1, "the log's copy of the NVML event is not counted again"
        assert len(store.query(0, 2**62, kinds=["gpu_xid"])) == 1
    finally:
        c.stop()
