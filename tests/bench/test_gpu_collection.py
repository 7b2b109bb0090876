"""Benchmark: CPU time of one GPU poll pass over 8 GPUs (NVML test double), and of
a scrape served from the cache. Goal: a fast pass under 5 ms CPU. Prints numbers;
asserts nothing about timing."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.unit.gpu.helpers import make_collector

RUNS = 100


def _median_cpu_ms(fn, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times) * 1e3


@pytest.mark.bench
def test_gpu_collection_pass_cpu_time() -> None:
    c, fake, store = make_collector("h100_sxm_8x")
    c.start()
    assert c.wait_first_poll(5)
    try:
        c.refresh()
        fast = _median_cpu_ms(lambda: c.refresh(slow=False))
        full = _median_cpu_ms(lambda: c.refresh(slow=True))
        scrape = _median_cpu_ms(lambda: list(c.collect()))
        n = len(list(c.collect()))
    finally:
        c.stop()
    print(f"\nGPU poll, 8 fake H100s, median CPU of {RUNS}: fast pass {fast:.2f} ms "
          f"({fast / 8:.3f} ms/GPU; goal < 5 ms), full pass incl. slow fields {full:.2f} ms, "
          f"scrape from cache {scrape:.2f} ms ({n} samples)")
    assert n > 8 * 50  # the pass measured really produced every GPU's series
