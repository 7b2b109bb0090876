"""How long one verification round costs: the daemon runs one every
tuning.verify_interval. Prints numbers; asserts nothing about time."""

import shutil
import time
from pathlib import Path

import pytest

from agent.paths import Paths
from tuning.engine import build_engine
from tuning.settings import TuningSettings

pytestmark = pytest.mark.bench

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tuning-2s8g"


def _rounds(engine, n: int = 50) -> tuple[float, int]:
    rows = engine.plan()
    start = time.perf_counter()
    for _ in range(n):
        engine.verify()
    return (time.perf_counter() - start) / n, len(rows)


def test_verify_round_cost(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(FIXTURE, root, symlinks=True)
    fixture_s, fixture_rows = _rounds(build_engine(Paths(root), TuningSettings(profile_dirs=[])))
    host_s, host_rows = _rounds(build_engine(Paths("/"), TuningSettings(profile_dirs=[])), n=20)
    print(f"\nverify, 2-socket 8-GPU fixture: {fixture_rows} knobs, {fixture_s * 1e3:.2f} ms per round")
    print(f"verify, this VM (real /proc, /sys, ethtool): {host_rows} knobs, {host_s * 1e3:.2f} ms per round")
    assert fixture_rows > 80 and host_rows > 0


def test_verify_round_cost_of_isolation_and_boot_parameters(tmp_path):
    """inference-isolated on this VM scans every thread (processes.cpu_affinity) and
    interrupt; inference-partitioned on a GRUB fixture sources GRUB's configuration in
    a shell for each boot parameter."""
    from tests.unit.tuning.test_boot_fixture import grub_host

    iso_s, iso_rows = _rounds(build_engine(Paths("/"), TuningSettings(profile_dirs=[]), "inference-isolated"), n=20)
    threads = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() for _ in (p / "task").glob("[0-9]*"))
    root = tmp_path / "root"
    shutil.copytree(FIXTURE, root, symlinks=True)
    grub_host(root)
    part_s, part_rows = _rounds(build_engine(Paths(root), TuningSettings(profile_dirs=[]), "inference-partitioned"),
                                n=20)
    print(f"\nverify, inference-isolated on this VM ({threads} threads): {iso_rows} knobs, {iso_s * 1e3:.2f} ms")
    print(f"verify, inference-partitioned on the GRUB fixture: {part_rows} knobs, {part_s * 1e3:.2f} ms")
    assert iso_rows > 0 and part_rows > 80
