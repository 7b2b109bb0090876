"""The slow-disk double models a contended disk under a real block device: O_DIRECT
reads of an ext4 file on its loop device are fast while the disk is quiet and wait
behind a real fsync storm, every read is a request of that block device, and what
ext4 wrote is read back intact after a remount."""

from __future__ import annotations

import hashlib
import mmap
import os
import random
import statistics
import time
from pathlib import Path

import pytest

from tests.harness.slowdisk import fsync_storm, slow_disk, stop

pytestmark = pytest.mark.integration

FILE_MIB = 32
READ = 64 << 10
READS = 100
# With the double's defaults the measured ratio is 25-50x (quiet ~1.2 ms: latency,
# transfer and FUSE round trip; storm ~55 ms: a read waits out a 50 ms cache flush or
# 4 MiB of queued writes); 5x leaves room for a loaded host.
MIN_RATIO = 5


def timed_direct_reads(path: Path, data: bytes, n: int, rnd: random.Random) -> list[float]:
    """n O_DIRECT preads of READ bytes at random aligned offsets; checks each one's bytes."""
    buf = mmap.mmap(-1, READ)  # page-aligned, as O_DIRECT wants
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    took = []
    try:
        for _ in range(n):
            off = rnd.randrange(len(data) // READ) * READ
            t = time.perf_counter()
            got = os.preadv(fd, [buf], off)
            took.append(time.perf_counter() - t)
            assert got == READ
            assert buf[:] == data[off:off + READ], f"wrong bytes read at offset {off}"
    finally:
        os.close(fd)
    return took


def p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(0.99 * len(xs)))]


def test_reads_wait_behind_an_fsync_storm_and_data_survives(tmp_path):
    with slow_disk(tmp_path) as disk:
        path = disk.mountpoint / "model.bin"
        data = os.urandom(FILE_MIB << 20)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        rnd = random.Random(0)
        ios_before = disk.read_ios()

        quiet = timed_direct_reads(path, data, READS, rnd)

        storm = fsync_storm(disk.mountpoint)
        try:
            time.sleep(0.3)
            stormy = timed_direct_reads(path, data, READS, rnd)
            assert storm.poll() is None, "the storm ended early: the reads were not under contention"
        finally:
            stop(storm)

        ios = disk.read_ios() - ios_before
        q, s = statistics.median(quiet), statistics.median(stormy)
        print(f"\nquiet median {q * 1e3:.2f} ms p99 {p99(quiet) * 1e3:.2f} ms; "
              f"storm median {s * 1e3:.2f} ms p99 {p99(stormy) * 1e3:.2f} ms; "
              f"ratio {s / q:.1f}; {disk.device} read I/Os {ios}")
        assert ios >= 2 * READS, f"{disk.device} counted {ios} reads for {2 * READS} O_DIRECT preads"
        assert s >= MIN_RATIO * q, f"storm median {s * 1e3:.2f} ms vs quiet {q * 1e3:.2f} ms"

        disk.remount()
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(data).hexdigest()
