#!/usr/bin/python3
"""Slow disk: a TEST DOUBLE for the storage medium under a block device.

A FUSE file system holding one file, `disk`, meant to back a loop device. Everything
above that file is real: loop driver, block layer (its tracepoints and
/sys/block/*/stat), ext4, its journal, page cache and the fsyncs of real processes.
Only the medium is modelled, as one disk with a single queue:

  - requests (read, write, fsync) are served strictly one at a time, in arrival order;
  - a read or write holds the device for latency + bytes / bandwidth (reads and writes
    have their own latency and bandwidth);
  - an fsync of the backing file (what the loop driver does for a flush or FUA request)
    holds it for --flush-latency-ms.

Data is stored in memory (anonymous mmap: pages never written cost nothing) and read
back exactly as written, so a file system can live on it; it is lost when the double
exits. Not modelled: seeks or locality, request merging or reordering inside the device,
a device-side write cache (a write is durable once served), several hardware queues,
errors, discard.

Clocking: the device keeps the time at which it becomes free and each request ends at
max(arrival, free) + service time, so timer overshoot of one sleep does not add up
along a queue.

    slow_disk.py MOUNTPOINT [--size-mib 256]
        [--read-latency-ms 0.5] [--read-mbps 400]
        [--write-latency-ms 0.5] [--write-mbps 40] [--flush-latency-ms 50]

Runs with the system Python (pyfuse3 and trio from Debian's python3-pyfuse3), as root.
SIGTERM or SIGINT unmounts and exits 0.
"""

from __future__ import annotations

import argparse
import errno
import mmap
import os
import signal
import stat
import time

import pyfuse3
import trio

DISK_INODE = pyfuse3.ROOT_INODE + 1
DISK_NAME = b"disk"


class Medium:
    """The single queue: one request on the device at a time, FIFO (trio.Lock is fair)."""

    def __init__(self, *, read_latency: float, read_bps: float, write_latency: float,
                 write_bps: float, flush_latency: float) -> None:
        self.read_latency, self.read_bps = read_latency, read_bps
        self.write_latency, self.write_bps = write_latency, write_bps
        self.flush_latency = flush_latency
        self._lock = trio.Lock()
        self._free_at = 0.0

    async def hold(self, seconds: float) -> None:
        async with self._lock:
            end = max(trio.current_time(), self._free_at) + seconds
            self._free_at = end
            await trio.sleep_until(end)

    async def read(self, nbytes: int) -> None:
        await self.hold(self.read_latency + nbytes / self.read_bps)

    async def write(self, nbytes: int) -> None:
        await self.hold(self.write_latency + nbytes / self.write_bps)

    async def flush(self) -> None:
        await self.hold(self.flush_latency)


class DiskOps(pyfuse3.Operations):
    def __init__(self, size: int, medium: Medium) -> None:
        super().__init__()
        self.size = size
        self.data = mmap.mmap(-1, size)
        self.medium = medium
        self.mtime_ns = time.time_ns()

    def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        if inode == pyfuse3.ROOT_INODE:
            e.st_mode, e.st_nlink, e.st_size = stat.S_IFDIR | 0o755, 2, 0
        elif inode == DISK_INODE:
            e.st_mode, e.st_nlink, e.st_size = stat.S_IFREG | 0o600, 1, self.size
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        e.st_ino = inode
        e.st_uid, e.st_gid = os.getuid(), os.getgid()
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = self.mtime_ns
        e.st_blksize = 4096
        e.st_blocks = (e.st_size + 511) // 512
        e.entry_timeout = e.attr_timeout = 3600
        return e

    async def getattr(self, inode, ctx=None):
        return self._attr(inode)

    async def setattr(self, inode, attr, fields, fh, ctx):
        # The disk's size is fixed, as a device's is; times and modes are not kept.
        if fields.update_size and attr.st_size != self.size:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return self._attr(inode)

    async def lookup(self, parent_inode, name, ctx=None):
        if parent_inode == pyfuse3.ROOT_INODE and name == DISK_NAME:
            return self._attr(DISK_INODE)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def opendir(self, inode, ctx):
        if inode != pyfuse3.ROOT_INODE:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh, start_id, token):
        if start_id == 0:
            pyfuse3.readdir_reply(token, DISK_NAME, self._attr(DISK_INODE), 1)

    async def releasedir(self, fh):
        pass

    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = self.size // 4096
        s.f_bfree = s.f_bavail = 0
        s.f_files, s.f_ffree, s.f_favail = 1, 0, 0
        s.f_namemax = 255
        return s

    async def open(self, inode, flags, ctx):
        if inode != DISK_INODE:
            raise pyfuse3.FUSEError(errno.EISDIR)
        # direct_io: no page cache for the backing file, so every loop request reaches
        # the modelled medium (and O_DIRECT loop mode is allowed).
        return pyfuse3.FileInfo(fh=inode, direct_io=True)

    async def read(self, fh, off, size):
        size = max(0, min(size, self.size - off))
        await self.medium.read(size)
        return self.data[off:off + size]

    async def write(self, fh, off, buf):
        if off + len(buf) > self.size:
            raise pyfuse3.FUSEError(errno.ENOSPC)
        await self.medium.write(len(buf))
        self.data[off:off + len(buf)] = buf
        return len(buf)

    async def fsync(self, fh, datasync):
        await self.medium.flush()

    async def flush(self, fh):
        # FUSE_FLUSH is sent on close(), not for durability: costs nothing on a disk.
        pass

    async def release(self, fh):
        pass


async def serve() -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pyfuse3.main)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
        pyfuse3.terminate()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="FUSE test double of one slow single-queue disk")
    p.add_argument("mountpoint")
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--read-latency-ms", type=float, default=0.5)
    p.add_argument("--read-mbps", type=float, default=400.0, help="MB/s (10^6 bytes)")
    p.add_argument("--write-latency-ms", type=float, default=0.5)
    p.add_argument("--write-mbps", type=float, default=40.0, help="MB/s (10^6 bytes)")
    p.add_argument("--flush-latency-ms", type=float, default=50.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    medium = Medium(
        read_latency=a.read_latency_ms / 1e3, read_bps=a.read_mbps * 1e6,
        write_latency=a.write_latency_ms / 1e3, write_bps=a.write_mbps * 1e6,
        flush_latency=a.flush_latency_ms / 1e3,
    )
    ops = DiskOps(a.size_mib << 20, medium)
    opts = set(pyfuse3.default_options)
    opts.add("fsname=slow_disk")
    opts.discard("default_permissions")
    pyfuse3.init(ops, a.mountpoint, opts)
    try:
        trio.run(serve)
    finally:
        pyfuse3.close(unmount=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
