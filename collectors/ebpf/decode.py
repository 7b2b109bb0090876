"""Outlier events from the ring buffer: bytes -> agent Events.

The record layout is `struct event` in bpf/common.h; decoding is pure (bytes,
clock offset, scope table in; Event out) so it is tested on plain bytes.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.events import NODE, AttrValue, Event
from collectors.ebpf.programs import BY_ID

# u32 program, tid, cpu, scope_id; u64 end_ns, duration_ns, a, b; u32 other_pid, flags; char comm[16]
RECORD = struct.Struct("<IIIIQQQQII16s")

BIO_OPS = ("read", "write", "other")
RECLAIM_KINDS = ("direct", "memcg")
# include/net/inet_connection_sock.h enum tcp_ca_state, the socket's state when it
# retransmitted: "loss" follows a retransmission timeout, "recovery" is a fast
# retransmit, "open" a tail-loss probe.
TCP_CA_STATES = ("open", "disorder", "cwr", "recovery", "loss")
# include/net/tcp_states.h, from 1: the socket's state when it retransmitted.
TCP_STATES = ("", "established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait", "close",
              "close_wait", "last_ack", "listen", "closing", "new_syn_recv")
AF_INET = 2


@dataclass(frozen=True)
class RawEvent:
    program: str
    tid: int
    cpu: int
    scope_id: int
    end_ns: int
    duration_ns: int
    a: int
    b: int
    other_pid: int
    flags: int
    comm: str


def parse_record(data: bytes) -> RawEvent:
    if len(data) < RECORD.size:
        raise ValueError(f"ring buffer record of {len(data)} bytes, expected {RECORD.size}")
    prog, tid, cpu, sid, end, dur, a, b, other, flags, comm = RECORD.unpack_from(data)
    program = BY_ID.get(prog)
    if program is None:
        raise ValueError(f"ring buffer record for unknown program id {prog}")
    return RawEvent(program.name, tid, cpu, sid, end, dur, a, b, other, flags,
                    comm.split(b"\0", 1)[0].decode("utf-8", "replace"))


def dev_name_key(dev: int) -> tuple[int, int]:
    """Kernel-internal dev_t (block tracepoints) -> (major, minor): MINORBITS is 20."""
    return dev >> 20, dev & 0xFFFFF


def _ipv4(n: int) -> str:
    return socket.inet_ntoa(struct.pack("<I", n & 0xFFFFFFFF))


def to_event(
    raw: RawEvent,
    to_realtime: Callable[[int], int],
    scopes: Mapping[int, str],
    device_name: Callable[[int, int], str],
    cgroup_of_pid: Callable[[int], str | None] = lambda pid: None,
    process_of: Callable[[int], tuple[int, str] | None] = lambda tid: None,
) -> Event:
    """The agent Event for a raw record (kinds and subjects of agent/event_kinds.py)."""
    end = to_realtime(raw.end_ns)
    start = end - raw.duration_ns
    dur_s = raw.duration_ns / 1e9
    scope_subject = f"cgroup:{scopes[raw.scope_id]}" if raw.scope_id in scopes else NODE
    if raw.program == "runqueue":
        attrs: dict[str, AttrValue] = {"tid": raw.tid, "cpu": raw.cpu, "holder_pid": raw.other_pid,
                                       "holder_comm": raw.comm}
        # The record has the holder's thread id and name; its process is procfs's.
        proc = process_of(raw.other_pid) if raw.other_pid else None
        if proc is not None:
            attrs["holder_process_pid"], attrs["holder_process_comm"] = proc
        return Event(start, end, "runqueue_wait", scope_subject, dur_s, attrs)
    if raw.program == "blockio":
        # Duration is the submitter's wait (submission -> completion); other_pid
        # carries the microseconds of it spent queued before the device had it.
        major, minor = dev_name_key(raw.a)
        op = BIO_OPS[raw.flags] if raw.flags < len(BIO_OPS) else "other"
        io_attrs: dict[str, AttrValue] = {"op": op, "bytes": raw.b, "issuer_pid": raw.tid, "cpu": raw.cpu,
                                          "queued_seconds": raw.other_pid / 1e6}
        if raw.scope_id in scopes:
            io_attrs["cgroup"] = scopes[raw.scope_id]
        return Event(start, end, "io_stall", f"dev:{device_name(major, minor)}", dur_s, io_attrs)
    if raw.program == "tcp_retransmit":
        attrs = {"sport": raw.b & 0xFFFF, "dport": (raw.b >> 16) & 0xFFFF}
        state = (raw.b >> 32) & 0xFF
        if 0 < state < len(TCP_STATES):
            attrs["tcp_state"] = TCP_STATES[state]
        if 0 < raw.other_pid <= len(TCP_CA_STATES):
            attrs["ca_state"] = TCP_CA_STATES[raw.other_pid - 1]
        if raw.flags == AF_INET:
            attrs["saddr"] = _ipv4(raw.a)
            attrs["daddr"] = _ipv4(raw.a >> 32)
        else:
            attrs["family"] = raw.flags
        return Event(start, end, "tcp_retransmit", NODE, 1.0, attrs)
    if raw.program == "oom":
        cg = cgroup_of_pid(raw.other_pid)
        return Event(start, end, "oom_kill", NODE, 1.0,
                     {"pid": raw.other_pid, "comm": raw.comm, "cgroup": cg or ""})
    if raw.program == "reclaim":
        kind = RECLAIM_KINDS[raw.flags] if raw.flags < len(RECLAIM_KINDS) else "direct"
        attrs = {"tid": raw.tid, "cpu": raw.cpu, "kind": kind, "comm": raw.comm}
        if raw.scope_id in scopes:
            return Event(start, end, "reclaim_stall", scope_subject, dur_s, {**attrs, "cgroup": scopes[raw.scope_id]})
        # Another thread's stall is its own cgroup's, never the node's: memcg reclaim
        # is that cgroup's limit, and even global reclaim delays a request only
        # through the request's own threads, whose stalls are theirs.
        cg = cgroup_of_pid(raw.tid)
        subject = f"cgroup:{cg}" if cg else f"thread:{raw.tid}"
        return Event(start, end, "reclaim_stall", subject, dur_s, {**attrs, "cgroup": cg or ""})
    raise ValueError(f"program {raw.program} does not emit events")
