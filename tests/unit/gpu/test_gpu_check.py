"""The comparison `make gpu-check` makes against nvidia-smi, on plain strings."""

from __future__ import annotations

import pytest

from tests.gpu_check import compare, format_table, parse_smi_csv
from tests.unit.gpu.helpers import make_collector


@pytest.fixture(scope="module")
def l40s_samples():
    c, fake, store = make_collector("l40s_pcie_1x")
    c.start()
    assert c.wait_first_poll(5)
    try:
        return list(c.collect())
    finally:
        c.stop()


def test_agreeing_readings_pass(l40s_samples) -> None:
    # L40S scenario: 35%, used 20000 MiB (+591 reserved), 46068 MiB, 181.25 W, 47 C, 2520/9001 MHz, P0
    smi = parse_smi_csv("0, 38, 20591, 46068, 179.90, 48, 2505, 9001, P0\n")
    checks = compare(smi, l40s_samples)
    assert [c.field for c in checks] == ["utilization.gpu", "memory.total", "memory.used", "power.draw",
                                         "temperature.gpu", "clocks.sm", "clocks.mem", "pstate"]
    assert all(c.ok for c in checks), format_table(checks)


def test_mismatches_are_flagged(l40s_samples) -> None:
    smi = parse_smi_csv("0, 35, 30000, 46068, 181.25, 60, 1200, 9001, P2\n")
    bad = {c.field for c in compare(smi, l40s_samples) if not c.ok}
    assert bad == {"memory.used", "temperature.gpu", "clocks.sm", "pstate"}


def test_not_available_cells_are_skipped_not_failed(l40s_samples) -> None:
    smi = parse_smi_csv("0, [N/A], 20000, 46068, [N/A], 47, 2520, 9001, P0\n")
    checks = {c.field: c for c in compare(smi, l40s_samples)}
    assert checks["power.draw"].ok and checks["power.draw"].tolerance.startswith("skipped")


def test_malformed_smi_output_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected 9"):
        parse_smi_csv("0, 35, 20000\n")
