"""The risky-conversion checks `make gpu-check` runs on hardware, on plain values:
each passes when the two sides agree and fails on the error it is there to catch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.topology import GpuInfo
from tests.gpu_check_conversions import (
    energy_check,
    kmsg_check,
    nvlink_check,
    parse_topo_matrix,
    topology_checks,
    violation_check,
)

TOPO = ("\x1b[4m\tGPU0\tGPU1\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\x1b[0m\n"
        "GPU0\t X \tNV18\tPXB\t0-55,112-167\t0\t\tN/A\n"
        "GPU1\tNV18\t X \tSYS\t56-111,168-223\t1\t\tN/A\n"
        "NIC0\tPXB\tSYS\t X \t\t\t\t\n\n"
        "Legend:\n\n  X    = Self\n  NV#  = Connection traversing a bonded set of # NVLinks\n")


def test_energy_in_joules_matches_power_and_a_millijoule_slip_does_not() -> None:
    assert energy_check("0", 1000.0, 1000.0 + 5 * 520, 5.0, [515, 520, 525]).ok
    assert not energy_check("0", 1000.0, 1000.0 + 5 * 520 * 1000, 5.0, [520]).ok, "mJ read as J"
    assert energy_check("0", None, 5.0, 5.0, [520]).tolerance.startswith("skipped")


def test_nvlink_aggregate_between_link_sums_and_an_18x_overcount_fails() -> None:
    assert nvlink_check("0", "tx", 18 * 1000.0, 18 * 1000.5, 18 * 1001.0).ok
    assert not nvlink_check("0", "tx", 18 * 18 * 1000.0, 18 * 1000.0, 18 * 18 * 1001.0).ok
    assert nvlink_check("0", "tx", None, 5.0, None).tolerance.startswith("skipped")


def test_violation_field_and_call_agree_in_ns() -> None:
    assert violation_check("0", 1.5e9, 1.5e9 + 2e8).ok
    assert not violation_check("0", 1.5e9, 1.5e6).ok, "a us/ns mix-up"


def test_topology_matrix_parsed_and_compared() -> None:
    m = parse_topo_matrix(TOPO)
    assert m == {"0": {"CPU Affinity": "0-55,112-167", "NUMA Affinity": "0"},
                 "1": {"CPU Affinity": "56-111,168-223", "NUMA Affinity": "1"}}
    ours = [GpuInfo(0, "", "0000:18:00.0", 0, tuple(range(56)) + tuple(range(112, 168))),
            GpuInfo(1, "", "0000:2a:00.0", 0, tuple(range(56, 112)) + tuple(range(168, 224)))]
    checks = topology_checks(m, ours)
    assert [(c.gpu, c.field, c.ok) for c in checks] == [
        ("0", "CPU affinity", True), ("0", "NUMA node", True),
        ("1", "CPU affinity", True), ("1", "NUMA node", False)]
    with pytest.raises(ValueError):
        parse_topo_matrix("no tabs here\nGPU0 X\n")


def test_kernel_log_lines_all_parse_or_the_check_fails() -> None:
    good = ["NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
            "nvidia-nvswitch0: SXid (PCI:0000:89:00.0): 12028, Non-fatal, Link 47 egress error",
            "usb 1-1: new high-speed USB device"]
    c = kmsg_check(good)
    assert c.ok and c.smi == "2 lines" and c.ours == "2 parsed"
    bad = kmsg_check(good + ["NVRM: Xid (PCI:weird): 79, something new"])
    assert not bad.ok and "weird" in bad.tolerance
    assert kmsg_check(["nothing"]).ok


def test_gpu_check_without_a_gpu_says_so_and_exits_zero() -> None:
    p = subprocess.run([sys.executable, "-m", "tests.gpu_check"], capture_output=True, text=True, timeout=60)
    if "no GPU" not in p.stdout:
        pytest.skip("this machine has an NVIDIA driver: gpu-check runs for real there")
    assert p.returncode == 0


def test_gpu_check_main_end_to_end_over_the_nvml_double(tmp_path, monkeypatch, capsys) -> None:
    """main() as it runs on a GPU machine, over the NVML double and an nvidia-smi
    stand-in (tests/doubles/nvidia_smi_standin.py): every check runs, none crashes."""
    import tests.gpu_check as gpu_check
    from tests.doubles.fake_pynvml import FakePynvml
    from tests.doubles.nvidia_smi_standin import write_standin

    fake = FakePynvml.load("h100_sxm_8x")
    fake.scenario["energy_follows_power"] = True
    write_standin(tmp_path / "bin", fake.scenario)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(gpu_check, "POWER_READS", 3)
    monkeypatch.setattr(gpu_check, "POWER_READ_INTERVAL", 0.2)
    rc = gpu_check.main()
    out = capsys.readouterr().out
    assert rc == 0, out
    for field in ("utilization.gpu", "energy (J/s vs W)", "nvlink tx KiB (aggregate vs links)",
                  "throttle power ns (FI 74 vs call)", "pcie gen current", "pcie width max",
                  "CPU affinity", "kernel-log XID lines"):
        assert field in out, field
    assert "MISMATCH" not in out and "gpu-check: ok" in out and "fast pass: median CPU" in out
