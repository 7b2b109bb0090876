from pathlib import Path

import pytest

from agent.bootstrap.detect import (
    classify_uevent,
    detect,
    parse_modules,
    parse_nvidia_proc_version,
    parse_os_release,
    pci_from_sysfs,
)
from agent.paths import Paths

FIX = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize("fixture,gpus,switches", [
    ("pci-hgx-8gpu-4nvswitch", 8, 4),
    ("pci-pcie-1gpu", 1, 0),
    ("pci-none", 0, 0),
])
def test_pci_detection_on_fixture_trees(fixture, gpus, switches):
    devs = pci_from_sysfs(Paths(FIX / fixture))
    assert sum(d.kind == "gpu" for d in devs) == gpus
    assert sum(d.kind == "nvswitch" for d in devs) == switches


def parse_uevent(text: str) -> dict[str, str]:
    """A sysfs uevent file as the properties udev hands the monitor (KEY=value lines)."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def test_hgx_details():
    devs = pci_from_sysfs(Paths(FIX / "pci-hgx-8gpu-4nvswitch"))
    gpu = [d for d in devs if d.kind == "gpu"]
    assert gpu[0].bdf == "0000:18:00.0" and gpu[0].device_id == 0x2330
    assert {d.numa_node for d in gpu} == {0, 1}
    # The Mellanox NIC and the Intel host bridge are not NVIDIA devices.
    assert all(not d.bdf.startswith("0000:0c") for d in devs)


def test_pcie_gpu_audio_function_is_not_a_gpu():
    devs = pci_from_sysfs(Paths(FIX / "pci-pcie-1gpu"))
    assert [d.bdf for d in devs] == ["0000:41:00.0"]


def test_uevent_path_agrees_with_attribute_path():
    root = FIX / "pci-hgx-8gpu-4nvswitch"
    from_attrs = pci_from_sysfs(Paths(root))
    from_uevents = []
    for entry in sorted((root / "sys/bus/pci/devices").iterdir()):
        d = classify_uevent(parse_uevent((entry / "uevent").read_text()))
        if d:
            from_uevents.append((d.bdf, d.kind, d.device_id))
    assert from_uevents == [(d.bdf, d.kind, d.device_id) for d in from_attrs]


def test_os_release_families():
    deb = parse_os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    assert (deb.id, deb.version_id, deb.family) == ("debian", "12", "debian")
    ubu = parse_os_release('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n')
    assert ubu.family == "debian"
    rocky = parse_os_release('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n')
    assert (rocky.family, rocky.version_id) == ("rhel", "9.4")
    assert parse_os_release("ID=arch\n").family == "unknown"


def test_nvidia_proc_version():
    open_km = ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build  "
               "(dvs-builder@U16-I3-B03-4-3)  Tue Sep 23 09:55:41 UTC 2025\nGCC version:  gcc version 12.2.0\n")
    assert parse_nvidia_proc_version(open_km) == ("580.95.05", True)
    prop = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    assert parse_nvidia_proc_version(prop) == ("535.104.05", False)
    assert parse_nvidia_proc_version("") is None


def test_modules_and_detect_on_fixture_root(tmp_path):
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("6.1.0-26-amd64\n")
    (tmp_path / "proc/modules").write_text("nouveau 2965504 0 - Live 0x0\ndrm 614400 1 nouveau, Live 0x0\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\n")
    (tmp_path / "usr/src/linux-headers-6.1.0-26-amd64").mkdir(parents=True)
    d = detect(Paths(tmp_path))
    assert d.kernel == "6.1.0-26-amd64" and d.kernel_headers
    assert d.nouveau_loaded and d.nvidia_module is None
    assert d.gpus == [] and d.os.family == "debian"
    assert "drm" in parse_modules((tmp_path / "proc/modules").read_text())


def test_gpu_hotplug_uevents_become_events():
    from agent.bootstrap.subsystem import uevent_to_event

    root = FIX / "pci-hgx-8gpu-4nvswitch/sys/bus/pci/devices"
    gpu = parse_uevent((root / "0000:18:00.0/uevent").read_text())
    ev = uevent_to_event("add", gpu, 123)
    assert (ev.kind, ev.subject, ev.start_ns, dict(ev.attributes)) == (
        "gpu_added", "node", 123, {"pci_bus_id": "0000:18:00.0", "device_id": "0x2330"})
    assert uevent_to_event("remove", gpu, 5).kind == "gpu_removed"
    assert uevent_to_event("change", gpu, 5) is None
    switch = parse_uevent((root / "0000:05:00.0/uevent").read_text())
    assert uevent_to_event("add", switch, 5) is None
    nic = parse_uevent((root / "0000:0c:00.0/uevent").read_text())
    assert uevent_to_event("remove", nic, 5) is None
    assert "gpu_added" in __import__("agent.event_kinds", fromlist=["KINDS"]).KINDS
