"""Network interface counters from /proc/net/dev."""

from __future__ import annotations

from collections.abc import Iterable

from agent.catalog import MetricSpec, MetricType, spec_named
from agent.collector import Collector
from agent.samples import Sample
from collectors.files import read_source

_SRC = "/proc/net/dev"

# Positions of the counters in the 8 receive and 8 transmit columns.
_COUNTERS = {"bytes": 0, "packets": 1, "errors": 2, "drops": 3}

HOST_NETWORK_BYTES_TOTAL = MetricSpec(
    "infernode_host_network_bytes_total", MetricType.COUNTER,
    "Bytes received or transmitted by the interface.", unit="bytes",
    labels=("device", "direction"), source=_SRC
)
HOST_NETWORK_PACKETS_TOTAL = MetricSpec(
    "infernode_host_network_packets_total", MetricType.COUNTER,
    "Packets received or transmitted by the interface.",
    labels=("device", "direction"), source=_SRC
)
HOST_NETWORK_ERRORS_TOTAL = MetricSpec(
    "infernode_host_network_errors_total", MetricType.COUNTER,
    "Receive or transmit errors the driver reported.",
    labels=("device", "direction"), source=_SRC
)
HOST_NETWORK_DROPS_TOTAL = MetricSpec(
    "infernode_host_network_drops_total", MetricType.COUNTER,
    "Packets dropped on receive or transmit (no buffer, filtered, queue full).",
    labels=("device", "direction"), source=_SRC
)
SPECS = (
    HOST_NETWORK_BYTES_TOTAL,
    HOST_NETWORK_PACKETS_TOTAL,
    HOST_NETWORK_ERRORS_TOTAL,
    HOST_NETWORK_DROPS_TOTAL,
)
_COUNTER_SPECS = {what: spec_named(SPECS, f"infernode_host_network_{what}_total") for what in _COUNTERS}


def parse_net_dev(text: str) -> dict[str, dict[str, tuple[int, int]]]:
    """{ifname: {"bytes": (receive, transmit), ...}} from /proc/net/dev.

    The first two lines are headers. Names can be long enough that the kernel
    prints no space after the colon ("veth1234abcd:123"), so the name is split on
    the colon, not on whitespace.
    """
    lines = text.splitlines()
    if len(lines) < 2 or "|" not in lines[0]:
        raise ValueError(f"{_SRC}: missing the two header lines")
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for lineno, line in enumerate(lines[2:], 3):
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) != 16:
            raise ValueError(f"{_SRC} line {lineno}: expected 'name: 16 counters', got {line[:60]!r}")
        try:
            nums = [int(v) for v in fields]
        except ValueError:
            raise ValueError(f"{_SRC} line {lineno}: non-numeric counter for {name.strip()!r}") from None
        out[name.strip()] = {k: (nums[i], nums[8 + i]) for k, i in _COUNTERS.items()}
    return out


class NetdevCollector(Collector):
    name = "netdev"
    specs = SPECS

    def collect(self) -> Iterable[Sample]:
        path = self.paths.proc("net", "dev")
        text = read_source(path, "mount procfs at /proc")
        for device, counters in parse_net_dev(text).items():
            for what, (rx, tx) in counters.items():
                spec = _COUNTER_SPECS[what]
                yield spec.emit({"device": device, "direction": "receive"}, float(rx))
                yield spec.emit({"device": device, "direction": "transmit"}, float(tx))
