"""What a request's client waited that its span cannot show: TCP retransmits on
its connection.

vLLM's span ends when the engine has produced the last token and the server has
handed it to the socket, not when the client has it. A lost segment of the
response stream delays the client and leaves the span as it was. So a retransmit
is never a share of the span's e2e: it is an estimated delay outside it, said as
such. The node sees the retransmits it sends: the response's, from arrival to
`TAIL` after the span's end (its last bytes). A lost upload is retransmitted by the
client, and a SYN-ACK by tcp:tcp_retransmit_synack, which is not traced: neither is
seen here.

Pure: the request, the retransmits on the worker's port from `TAIL` before its
arrival to `TAIL` after its span (already scoped by the port rule of
agent/tracing/ranking.py) and a count of the worker's other requests that may own
a segment sent at a time in; a ClientDelay out.

Two figures. After the span: the last retransmit of the window left the node
`after_span_s` after the span ended, so the client had its last bytes no sooner
(measured, a lower bound of how much longer the client's e2e was). The stall: what
the lost segments waited, estimated (the eBPF program stamps each retransmit with
the socket's congestion state, tcp:tcp_cong_state_set):
- a retransmit in the "loss" state follows a retransmission timeout. The receiver
  waited at least TCP_RTO_MIN (200 ms on Linux) before the first one; timeouts of a
  flow chained within CHAIN of each other are the same data backing off (200, 400,
  800 ms ...), whose waits are the gaps between them. A chain costs RTO_MIN + its
  span: a lower bound (the first timeout is RTO_MIN or more), labelled estimated.
  Segments retransmitted back to back after one timeout (within BURST) are one.
- a fast retransmit ("recovery") or a tail-loss probe ("open") costs the receiver
  about a round trip or a probe timeout, which no tracepoint gives: counted, not
  timed.
- without the state (a kernel before 5.19), no time is estimated either.

Which connection is the request's is not in its span. A flow that retransmitted
before the request arrived is an earlier request's (its tail, its FIN), not this
one's. Another is taken to be its connection when no other request of the worker
was on the engine when it first retransmitted, nor, after the span, ended after it
(agent/tracing/engine_load.py `others_at`): a client waiting for a lost segment
sends nothing new meanwhile, so sequential traffic is told apart. Otherwise the
connection is not known, and the delay is reported as such, never as the
request's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.events import Event
from agent.tracing.spans import RequestSpan
from agent.units import short_duration

RTO_MIN_S = 0.2  # include/net/tcp.h TCP_RTO_MIN (HZ / 5)
TAIL_NS = 1_000_000_000
CHAIN_NS = 2_000_000_000
BURST_NS = 10_000_000
KIND = "tcp_retransmit"
MAX_SEGMENTS = 32  # listed in the JSON answer


@dataclass(frozen=True)
class ClientDelay:
    estimated_s: float  # the lost segments' stall; 0.0 when nothing could be timed
    after_span_s: float  # the last retransmit's time after the span's end (measured), else 0
    retransmits: int
    timeouts: int  # chains of retransmission timeouts
    fast: int  # fast retransmits and loss probes (not timed)
    flows: tuple[str, ...]
    where: tuple[str, ...]  # "while it streamed", "after the span"
    others_in_flight: int  # > 0: the connection is not known to be the request's
    untimed_state: bool = False  # retransmits without a congestion state
    # Each retransmit: (seconds after the request's arrival, flow, congestion state, TCP state).
    segments: tuple[tuple[float, str, str, str], ...] = field(default_factory=tuple)
    # Beside the request's own flows, others in its window that another request may own.
    unknown_flows: tuple[str, ...] = ()

    @property
    def attributed(self) -> bool:
        return self.others_in_flight == 0

    @property
    def text(self) -> str:
        n = self.retransmits
        head = f"TCP retransmits to its client: {n} segment{'s' if n != 1 else ''} {', '.join(self.where)}"
        parts = []
        if self.timeouts:
            parts.append(f"{self.timeouts} retransmission timeout{'s' if self.timeouts != 1 else ''}")
        if self.fast:
            parts.append(f"{self.fast} fast retransmit{'s' if self.fast != 1 else ''} or loss probe"
                         f"{'s' if self.fast != 1 else ''} (about a round trip each, not timed)")
        if self.untimed_state:
            parts.append("the congestion state not traced here, not timed")
        head += f" on {', '.join(self.flows[:3])}" + (f" and {len(self.flows) - 3} more" if len(self.flows) > 3 else "")
        if parts:
            head += ": " + "; ".join(parts)
        if not self.attributed:
            return (head + f"; {self.others_in_flight} other request{'s' if self.others_in_flight != 1 else ''} "
                    "of the worker in flight, so the connection is not known to be this one's")
        if self.estimated_s > 0:
            head += (f"; the lost segments waited an estimated {short_duration(self.estimated_s)} "
                     f"({short_duration(RTO_MIN_S)} minimum timeout per chain plus its backoff)")
        if self.after_span_s > 0:
            head += (f"; its last retransmit left {short_duration(self.after_span_s)} after the span ended, so the client's "
                     "e2e was at least that much longer (measured)")
        return head

    def to_json(self) -> dict[str, object]:
        return {
            "kind": KIND,
            "estimated_seconds": round(self.estimated_s, 6),
            "after_span_seconds": round(self.after_span_s, 6),
            "attributed": self.attributed,
            "retransmits": self.retransmits,
            "timeouts": self.timeouts,
            "fast_or_probe": self.fast,
            "flows": list(self.flows),
            "where": list(self.where),
            "others_in_flight": self.others_in_flight,
            "text": self.text,
            "unknown_flows": list(self.unknown_flows),
            "segments": [{"seconds_after_arrival": round(t, 6), "flow": f, "ca_state": ca, "tcp_state": st}
                         for t, f, ca, st in self.segments[:MAX_SEGMENTS]],
        }


def window(r: RequestSpan) -> tuple[int, int]:
    """Where a request's retransmits are looked for: from TAIL before its arrival
    (to tell the flows that were there before it) to TAIL after its span."""
    return r.start_ns - TAIL_NS, r.start_ns + int(r.e2e * 1e9) + TAIL_NS


def client_delay(r: RequestSpan, retransmits: Sequence[Event], ports: frozenset[int],
                 others_at: Callable[[int], int]) -> ClientDelay | None:
    """The delay the request's client saw from `retransmits` (the worker listening
    on `ports`), or None without any."""
    start, end = r.start_ns, r.start_ns + int(r.e2e * 1e9)
    by_flow: dict[str, list[Event]] = {}
    for ev in sorted((ev for ev in retransmits if ev.kind == KIND), key=lambda ev: ev.start_ns):
        by_flow.setdefault(_client_end(ev, ports), []).append(ev)
    # A flow that retransmitted before the request arrived carried an earlier one.
    by_flow = {f: evs for f, evs in by_flow.items() if evs[0].start_ns >= start}
    if not by_flow:
        return None
    # A connection carries one request at a time: a flow is the request's when no other
    # request could own it as it first retransmitted; its later retransmits follow it.
    owners = {f: others_at(evs[0].start_ns) for f, evs in by_flow.items()}
    own = {f: evs for f, evs in by_flow.items() if owners[f] == 0}
    unknown = sorted(f for f in by_flow if owners[f] > 0)
    counted = own or by_flow
    evs = sorted((ev for flow_evs in counted.values() for ev in flow_evs), key=lambda ev: ev.start_ns)
    estimated = 0.0
    timeouts = fast = 0
    untimed = False
    for flow_evs in counted.values():
        chain_start = last_timeout = None
        for ev in flow_evs:
            state = ev.attributes.get("ca_state")
            if state is None:
                untimed = True
                continue
            if state != "loss":
                fast += 1
                continue
            t = ev.start_ns
            if last_timeout is not None and t - last_timeout <= BURST_NS:
                last_timeout = t  # another segment sent back to back after the same timeout
                continue
            if chain_start is None or last_timeout is None or t - last_timeout > CHAIN_NS:
                if chain_start is not None and last_timeout is not None:
                    estimated += RTO_MIN_S + (last_timeout - chain_start) / 1e9
                chain_start = t
            timeouts += 1
            last_timeout = t
        if chain_start is not None and last_timeout is not None:
            estimated += RTO_MIN_S + (last_timeout - chain_start) / 1e9
    where = []
    for label, hit in (("while it streamed", any(start <= ev.start_ns <= end for ev in evs)),
                       ("after the span", any(ev.start_ns > end for ev in evs))):
        if hit:
            where.append(label)
    others = 0 if own else max(owners.values())
    after = max(0.0, (evs[-1].start_ns - end) / 1e9)
    segments = tuple(((ev.start_ns - start) / 1e9, flow, str(ev.attributes.get("ca_state", "?")),
                      str(ev.attributes.get("tcp_state", "?")))
                     for flow, flow_evs in sorted(counted.items()) for ev in flow_evs)
    return ClientDelay(estimated, after, len(evs), timeouts, fast, tuple(sorted(counted)), tuple(where), others,
                       untimed, segments, tuple(unknown) if own else ())


def _client_end(ev: Event, ports: frozenset[int]) -> str:
    """The flow's far end: the side whose port is not the worker's."""
    a = ev.attributes
    if a.get("sport") in ports:
        return f"{a.get('daddr', '?')}:{a.get('dport', '?')}"
    return f"{a.get('saddr', '?')}:{a.get('sport', '?')}"
