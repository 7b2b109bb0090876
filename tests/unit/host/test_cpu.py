import pytest

from agent.collector import NoDataError
from collectors.host.cpu import CpuCollector, parse_proc_stat_cpus
from tests.unit.collector_helpers import make_collector, series

STAT = """cpu  7916 0 3909 427464 386 0 99 23 0 0
cpu0 2648 0 1428 215839 16 0 8 9 0 0
cpu1 5268 7 2481 211624 370 1 90 14 120 3
intr 299798 0 0
ctxt 538182
btime 1795429124
"""


def test_ticks_become_seconds_per_cpu_and_mode():
    got = parse_proc_stat_cpus(STAT)
    assert list(got) == ["0", "1"]
    assert got["0"]["user"] == 26.48
    assert got["1"] == {"user": 52.68, "nice": 0.07, "system": 24.81, "idle": 2116.24,
                        "iowait": 3.7, "irq": 0.01, "softirq": 0.9, "steal": 0.14}


def test_guest_columns_are_not_exported_because_user_includes_them():
    got = parse_proc_stat_cpus(STAT)
    assert "guest" not in got["1"] and "guest_nice" not in got["1"]


def test_old_kernel_without_steal_gives_the_columns_it_has():
    got = parse_proc_stat_cpus("cpu0 10 20 30 40 50 60 70\n")
    assert got["0"] == {"user": 0.1, "nice": 0.2, "system": 0.3, "idle": 0.4,
                        "iowait": 0.5, "irq": 0.6, "softirq": 0.7}


@pytest.mark.parametrize("text,fragment", [
    ("cpu0 1 2\n", "line 1: malformed cpu line"),
    ("cpu0 1 2 x 4 5\n", "non-numeric"),
    ("cpuX 1 2 3 4 5\n", "malformed"),
    ("intr 1 2 3\n", "no cpuN lines"),
])
def test_garbage_raises_naming_the_line(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_proc_stat_cpus(text)


def test_collector_on_a_tree(tree):
    root = tree({"proc/stat": STAT})
    got = series(make_collector(CpuCollector, root).collect())
    assert got[("infernode_host_cpu_seconds_total", (("cpu", "1"), ("mode", "idle")))] == 2116.24
    assert len(got) == 16


def test_missing_proc_stat_is_no_data(tmp_path):
    with pytest.raises(NoDataError):
        list(make_collector(CpuCollector, tmp_path).collect())
