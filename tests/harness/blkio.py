"""v1 blkio accounting on recent kernels.

v1 blkio counts a cgroup's I/O (blkio.throttle.io_service_bytes*) only on devices
where blk-throttle is active, and recent kernels activate it on a device the first
time any cgroup sets a rule for it: until then every cgroup reads "Total 0". Seen on
6.18 here: a cgroup's 3 MiB of O_DIRECT writes read 0 until one rule was set, and
were counted from then on, in every cgroup, until reboot. A test that needs the
counts sets a rule so high that it limits nothing, rather than rely on an earlier
test having set one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

NO_LIMIT_BPS = 1 << 40  # 1 TiB/s


def count_io(blkio_cgroup: Path, under: str | Path) -> bool:
    """Set a non-limiting write rule in `blkio_cgroup` for the disk holding `under`.
    False when that is a partition (a rule needs the whole disk) or the kernel refuses."""
    dev = os.stat(under).st_dev
    rule = f"{os.major(dev)}:{os.minor(dev)} {NO_LIMIT_BPS}"
    with contextlib.suppress(OSError):
        (blkio_cgroup / "blkio.throttle.write_bps_device").write_text(rule)
        return True
    return False
