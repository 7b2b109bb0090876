import pytest

from collectors.cgroup import (
    parse_blkio,
    parse_flat_keyed,
    parse_io_stat,
    parse_uevent_devname,
    parse_v1_limit,
    parse_v2_limit,
    slice_path,
)


@pytest.mark.parametrize("name,path", [
    ("inference.slice", "/inference.slice"),
    ("inference-gpu.slice", "/inference.slice/inference-gpu.slice"),
    ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("-.slice", "/"),
])
def test_slice_path_follows_systemd_nesting(name, path):
    assert slice_path(name) == path


def test_flat_keyed():
    text = "usage_usec 612345678\nuser_usec 497901223\nnr_throttled 412\n"
    assert parse_flat_keyed(text, "cpu.stat") == {"usage_usec": 612345678, "user_usec": 497901223,
                                                  "nr_throttled": 412}
    with pytest.raises(ValueError, match="cpu.stat line 2: expected 'key integer'"):
        parse_flat_keyed("usage_usec 1\nnr_throttled banana\n", "cpu.stat")


def test_limits():
    assert parse_v2_limit("max\n", "memory.max") is None
    assert parse_v2_limit("8589934592\n", "memory.max") == 8589934592
    assert parse_v1_limit("9223372036854771712\n", "memory.limit_in_bytes") is None
    assert parse_v1_limit("8589934592\n", "memory.limit_in_bytes") == 8589934592
    with pytest.raises(ValueError, match="memory.max: expected an integer"):
        parse_v2_limit("unlimited\n", "memory.max")


def test_io_stat_keeps_every_numeric_key_per_device():
    text = ("259:3 rbytes=50239209472 wbytes=4159188992 rios=2149376 wios=212334 dbytes=0 dios=0\n"
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6 cost.vrate=100.00 cost.usage=12\n")
    got = parse_io_stat(text)
    assert got["259:3"]["rbytes"] == 50239209472 and got["259:3"]["wios"] == 212334
    assert got["8:0"]["dios"] == 6 and got["8:0"]["cost.usage"] == 12
    assert "cost.vrate" not in got["8:0"]  # not an integer; not a counter we use
    with pytest.raises(ValueError, match="line 1"):
        parse_io_stat("rbytes=1 wbytes=2\n")


def test_blkio_skips_the_all_devices_total():
    text = ("254:0 Read 1610612736\n254:0 Write 52428800\n254:0 Sync 1663041536\n254:0 Async 0\n"
            "254:0 Discard 0\n254:0 Total 1663041536\nTotal 1663041536\n")
    assert parse_blkio(text) == {"254:0": {"Read": 1610612736, "Write": 52428800, "Sync": 1663041536,
                                           "Async": 0, "Discard": 0, "Total": 1663041536}}
    with pytest.raises(ValueError, match="line 1"):
        parse_blkio("254:0 Read lots\n")


def test_uevent_devname():
    assert parse_uevent_devname("MAJOR=259\nMINOR=0\nDEVNAME=nvme0n1\nDEVTYPE=disk\n") == "nvme0n1"
    assert parse_uevent_devname("MAJOR=259\n") is None
