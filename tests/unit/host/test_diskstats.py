import pytest

from collectors.host.diskstats import DiskstatsCollector, keep_device, parse_diskstats
from tests.unit.collector_helpers import make_collector, series

DISKSTATS = """   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   7       1 loop1 412 0 9216 88 0 0 0 0 0 140 88 0 0 0 0 0 0
 254       0 vda 37449 10970 2854026 12708 50045 39624 3126648 12585 0 8404 25859 6777 37 179760 426 3322 138
 254       1 vda1 37000 10970 2850000 12700 50000 39624 3126000 12580 0 8400 25850 6777 37 179760 426 0 0
 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   8       0 sda 100 2 800 30 50 1 400 20 1 45 50
"""


def test_parse_keeps_raw_counters_in_file_order():
    got = parse_diskstats(DISKSTATS)
    assert [d for d, _ in got] == ["loop0", "loop1", "vda", "vda1", "zram0", "sda"]
    assert len(got[2][1]) == 17
    assert len(got[5][1]) == 11  # a pre-4.18 line: no discard or flush columns


@pytest.mark.parametrize("text", ["   8 0 sda 1 2 3\n", "   8 0 sda 1 2 3 4 5 6 7 8 9 10 x\n"])
def test_garbage_raises(text):
    with pytest.raises(ValueError, match="/proc/diskstats line 1"):
        parse_diskstats(text)


def test_device_filter():
    disks = {"vda", "loop0", "loop1", "zram0", "sda"}
    assert keep_device("vda", [1, 2], disks)
    assert not keep_device("vda1", [1, 2], disks)  # partition: its disk's line counts it
    assert not keep_device("loop0", [0, 0], disks)  # never used
    assert keep_device("loop1", [412, 0], disks)  # backs something: real I/O
    assert keep_device("vda1", [1], None)  # no /sys/block to tell: keep


def test_units_are_bytes_and_seconds(tree):
    root = tree({"proc/diskstats": DISKSTATS, **{f"sys/block/{d}/dev": "x\n" for d in
                                                 ("loop0", "loop1", "vda", "zram0", "sda")}})
    got = series(make_collector(DiskstatsCollector, root).collect())
    devices = {dict(k[1])["device"] for k in got}
    assert devices == {"loop1", "vda", "sda"}
    vda = (("device", "vda"),)
    assert got[("infernode_host_disk_read_bytes_total", vda)] == 2854026 * 512
    assert got[("infernode_host_disk_read_time_seconds_total", vda)] == 12.708
    assert got[("infernode_host_disk_io_time_weighted_seconds_total", vda)] == 25.859
    assert got[("infernode_host_disk_discarded_bytes_total", vda)] == 179760 * 512
    assert got[("infernode_host_disk_flushes_completed_total", vda)] == 3322
    sda = (("device", "sda"),)
    assert got[("infernode_host_disk_io_now", sda)] == 1
    assert ("infernode_host_disk_discards_completed_total", sda) not in got
