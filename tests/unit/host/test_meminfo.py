import pytest

from collectors.host.meminfo import MeminfoCollector, parse_hugepage_dir_name, parse_meminfo
from tests.unit.collector_helpers import make_collector, series

MEMINFO = """MemTotal:       24684092 kB
MemFree:        24025592 kB
MemAvailable:   24262648 kB
Buffers:            6032 kB
Cached:           347768 kB
SwapTotal:             0 kB
Dirty:             95892 kB
HugePages_Total:      16
HugePages_Free:       12
Hugepagesize:       2048 kB
"""


def test_kb_is_kibibytes_and_counts_stay_counts():
    got = parse_meminfo(MEMINFO)
    assert got["MemTotal"] == 24684092 * 1024
    assert got["Dirty"] == 95892 * 1024
    assert got["HugePages_Total"] == 16
    assert got["Hugepagesize"] == 2 * 1024 * 1024


@pytest.mark.parametrize("text,fragment", [
    ("MemTotal:       24684092 kB\nMemFree:   2402 k", "unknown unit 'k'"),
    ("MemTotal: lots kB\n", "not a number"),
    ("MemTotal 1 kB\n", "expected 'Name: value"),
    ("MemFree: 1 kB\n", "no MemTotal"),
])
def test_garbage_raises(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_meminfo(text)


def test_hugepage_dir_names():
    assert parse_hugepage_dir_name("hugepages-2048kB") == 2 << 20
    assert parse_hugepage_dir_name("hugepages-1048576kB") == 1 << 30
    with pytest.raises(ValueError):
        parse_hugepage_dir_name("hugepages-2M")


def test_collector_reports_memory_and_hugepages_per_size_and_node(tree):
    hp = "sys/kernel/mm/hugepages/hugepages-2048kB/"
    node1 = "sys/devices/system/node/node1/hugepages/hugepages-2048kB/"
    root = tree({
        "proc/meminfo": MEMINFO,
        hp + "nr_hugepages": "16\n", hp + "free_hugepages": "12\n",
        hp + "resv_hugepages": "1\n", hp + "surplus_hugepages": "0\n",
        node1 + "nr_hugepages": "8\n", node1 + "free_hugepages": "5\n",
        "sys/devices/system/node/online": "0-1\n",  # not a node directory; ignored
    })
    got = series(make_collector(MeminfoCollector, root).collect())
    assert got[("infernode_host_memory_available_bytes", ())] == 24262648 * 1024
    assert ("infernode_host_memory_swap_free_bytes", ()) not in got  # absent line, absent series
    assert got[("infernode_host_hugepages_configured", (("page_size", "2097152"),))] == 16
    assert got[("infernode_host_hugepages_reserved", (("page_size", "2097152"),))] == 1
    assert got[("infernode_host_numa_hugepages_free", (("numa_node", "1"), ("page_size", "2097152")))] == 5


def test_garbage_hugepage_count_fails_naming_the_file(tree):
    root = tree({"proc/meminfo": MEMINFO,
                 "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages": "lots\n"})
    with pytest.raises(ValueError, match="nr_hugepages: expected an integer"):
        list(make_collector(MeminfoCollector, root).collect())
