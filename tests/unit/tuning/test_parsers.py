"""Pure parsers of the tuning engine, on plain strings."""

import pytest

from agent.cpulist import CpuListError, format_cpulist, parse_cpulist
from tuning.desired import DesiredValueError, parse_desired
from tuning.tunable import selected
from tuning.tunables.block import parse_mountinfo_device
from tuning.tunables.nic import env_value, parse_ethtool_pairs, with_env_value


@pytest.mark.parametrize("spec,current,ok", [
    ("performance", "performance", True),
    ("performance", "powersave", False),
    ("madvise|never", "never", True),
    ("madvise|never", "always", False),
    (">=4096", "4096", True),
    (">=4096", "4095", False),
    (">=4096", "lots", False),
    ("<=2", "0", True),
    ("<=2", "2000000000", False),
    ("4096 131072 >=16777216", "4096 131072 33554432", True),
    ("4096 131072 >=16777216", "4096 131072 6291456", False),
    ("4096 131072 >=16777216", "4096 131072", False),
])
def test_desired_matching(spec, current, ok):
    assert parse_desired(spec).matches(current) is ok


def test_value_to_write_keeps_matching_fields_and_uses_bounds():
    assert parse_desired("4096 131072 >=16777216").value_to_write("4096 87380 33554432") == "4096 131072 33554432"
    assert parse_desired(">=16384").value_to_write("1000") == "16384"
    assert parse_desired("defer+madvise|madvise").value_to_write("always") == "defer+madvise"
    assert parse_desired(10).value_to_write("60") == "10"


@pytest.mark.parametrize("bad", [None, True, 1.5, [], "", ">=x", "a||b"])
def test_desired_rejects(bad):
    with pytest.raises(DesiredValueError):
        parse_desired(bad)


def test_cpulist_roundtrip():
    cpus = parse_cpulist("0-3,8,10-11\n")
    assert cpus == {0, 1, 2, 3, 8, 10, 11}
    assert format_cpulist(cpus) == "0-3,8,10-11"
    assert format_cpulist([]) == ""
    with pytest.raises(CpuListError):
        parse_cpulist("3-1")
    with pytest.raises(CpuListError):
        parse_cpulist("a,b")


def test_selected_choice():
    assert selected("always [madvise] never") == "madvise"
    assert selected("[none] mq-deadline kyber bfq ") == "none"
    assert selected("madvise") == "madvise"


ETHTOOL_L = """Channel parameters for eth0:
Pre-set maximums:
RX:\t\tn/a
TX:\t\tn/a
Other:\t\t1
Combined:\t63
Current hardware settings:
RX:\t\tn/a
TX:\t\tn/a
Other:\t\t1
Combined:\t8
"""

ETHTOOL_G = """Ring parameters for eth0:
Pre-set maximums:
RX:\t\t8192
RX Mini:\tn/a
RX Jumbo:\tn/a
TX:\t\t8192
Current hardware settings:
RX:\t\t1024
RX Mini:\tn/a
RX Jumbo:\tn/a
TX:\t\t1024
RX Buf Len:\t\tn/a
TX Push:\toff
"""


def test_ethtool_channels_and_rings():
    maxima, current = parse_ethtool_pairs(ETHTOOL_L)
    assert maxima["combined"] == 63 and current["combined"] == 8
    assert maxima["rx"] is None
    maxima, current = parse_ethtool_pairs(ETHTOOL_G)
    assert (maxima["rx"], maxima["tx"], current["rx"], current["tx"]) == (8192, 8192, 1024, 1024)
    assert maxima["rx mini"] is None
    assert "tx push" in current and current["tx push"] is None


def test_irqbalance_env_file_edit():
    text = "# comment\n#IRQBALANCE_BANNED_CPULIST=\nIRQBALANCE_ARGS=\"--foo\"\n"
    assert env_value(text, "IRQBALANCE_BANNED_CPULIST") is None
    edited = with_env_value(text, "IRQBALANCE_BANNED_CPULIST", "1-7")
    assert edited.startswith(text) and edited.endswith('IRQBALANCE_BANNED_CPULIST="1-7"\n')
    assert env_value(edited, "IRQBALANCE_BANNED_CPULIST") == "1-7"
    again = with_env_value(edited, "IRQBALANCE_BANNED_CPULIST", "2-3")
    assert again.count("IRQBALANCE_BANNED_CPULIST=") == 1 + text.count("IRQBALANCE_BANNED_CPULIST=")
    assert env_value(again, "IRQBALANCE_BANNED_CPULIST") == "2-3"


def test_mountinfo_longest_prefix():
    text = ("26 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
            "31 26 259:1 / /var/lib/models rw - xfs /dev/nvme1n1p1 rw\n")
    assert parse_mountinfo_device(text, "/var/lib/models/llama") == "259:1"
    assert parse_mountinfo_device(text, "/var/lib/modelsX") == "8:1"
    assert parse_mountinfo_device(text, "/etc") == "8:1"


def test_short_hugepage_allocation_names_the_boot_parameter():
    from tuning.tunables.memory import short_allocation

    assert short_allocation("node1", 4, 4, "1G") is None
    msg = short_allocation("node1", 4, 1, "1G")
    assert "allocated 1 of 4 1G pages on node1" in msg
    assert "`hugepagesz=1G hugepages=1:4`" in msg
