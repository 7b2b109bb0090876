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
