import pytest

from collectors.host.netdev import NetdevCollector, parse_net_dev
from tests.unit.collector_helpers import make_collector, series

HEADER = ("Inter-|   Receive                                                |  Transmit\n"
          " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n")
NETDEV = HEADER + (
    "    lo:    7418      49    0    0    0     0          0         0     7418      49    0    0    0     0       0          0\n"
    "  eth0: 169687304    4411    2    5    0     0          0         0   297673    2713    1    3    0     0       0          0\n"
    "vethabcdef0123:12 1 0 0 0 0 0 0 34 2 0 0 0 0 0 0\n"
)


def test_parse_by_direction():
    got = parse_net_dev(NETDEV)
    assert got["eth0"] == {"bytes": (169687304, 297673), "packets": (4411, 2713),
                           "errors": (2, 1), "drops": (5, 3)}


def test_long_names_without_a_space_after_the_colon():
    assert parse_net_dev(NETDEV)["vethabcdef0123"]["bytes"] == (12, 34)


@pytest.mark.parametrize("text,fragment", [
    ("eth0: 1 2 3\n", "header"),
    (HEADER + "eth0: 1 2 3\n", "line 3"),
    (HEADER + "eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", "line 3"),
    (HEADER + "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n", "non-numeric"),
])
def test_garbage_raises(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_net_dev(text)


def test_collector(tree):
    got = series(make_collector(NetdevCollector, tree({"proc/net/dev": NETDEV})).collect())
    assert got[("infernode_host_network_drops_total", (("device", "eth0"), ("direction", "receive")))] == 5
    assert got[("infernode_host_network_bytes_total", (("device", "eth0"), ("direction", "transmit")))] == 297673
    assert len(got) == 3 * 4 * 2
