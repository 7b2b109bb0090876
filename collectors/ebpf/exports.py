"""Kernel map contents (plain lists and tuples) -> samples. Pure, so the layouts
in bpf/*.c and their export are tested without a kernel."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from agent.samples import Sample
from collectors.ebpf.decode import BIO_OPS, RECLAIM_KINDS, dev_name_key
from collectors.ebpf.histogram import SLOTS, log2_histogram
from collectors.ebpf.specs import (
    BLOCK_IO_INFERENCE_REQUESTS_TOTAL,
    BLOCK_IO_INFERENCE_WAIT_SECONDS_TOTAL,
    BLOCK_IO_LATENCY_SECONDS,
    IRQ_TIME_SECONDS_TOTAL,
    OFFCPU_SECONDS,
    RECLAIM_STALL_SECONDS_TOTAL,
    RECLAIM_STALLS_TOTAL,
    RUNQUEUE_LATENCY_SECONDS,
    TCP_RETRANSMITS_TOTAL,
)

SCOPES = ("other", "inference")  # index = SCOPE_OTHER / SCOPE_INFERENCE in common.h
OFFCPU_KINDS = ("involuntary", "voluntary")
IRQ_KINDS = ("hard", "soft")


def runqueue_samples(hist: Sequence[int], sums: Sequence[int]) -> Iterable[Sample]:
    """hist: [scope][slot] flattened; sums: [scope] ns."""
    for scope, name in enumerate(SCOPES):
        slots = dict(enumerate(hist[scope * SLOTS:(scope + 1) * SLOTS]))
        yield RUNQUEUE_LATENCY_SECONDS.emit({"scope": name}, log2_histogram(slots, sums[scope]))


def offcpu_samples(hist: Sequence[int], sums: Sequence[int], all_threads: bool) -> Iterable[Sample]:
    """hist: [scope][voluntary][slot]; sums: [scope][voluntary] ns. Without
    all_threads only inference threads are tracked, so only that scope is exported."""
    for scope in (0, 1) if all_threads else (1,):
        for vol, kind in enumerate(OFFCPU_KINDS):
            key = scope * 2 + vol
            slots = dict(enumerate(hist[key * SLOTS:(key + 1) * SLOTS]))
            yield OFFCPU_SECONDS.emit({"scope": SCOPES[scope], "kind": kind},
                         log2_histogram(slots, sums[key]))


def blockio_samples(entries: Iterable[tuple[int, int, int, int]],
                    device_name: Callable[[int, int], str]) -> Iterable[Sample]:
    """entries: (dev, op, slot, count); slot SLOTS carries the series' sum in ns."""
    series: dict[tuple[int, int], dict[int, int]] = {}
    for dev, op, slot, count in entries:
        series.setdefault((dev, op), {})[slot] = count
    for (dev, op), slots in sorted(series.items()):
        total_ns = slots.pop(SLOTS, 0)
        major, minor = dev_name_key(dev)
        opname = BIO_OPS[op] if op < len(BIO_OPS) else "other"
        yield BLOCK_IO_LATENCY_SECONDS.emit({"device": device_name(major, minor), "op": opname},
                     log2_histogram(slots, total_ns))


def inference_io_samples(totals: Mapping[tuple[int, int], tuple[int, ...]],
                         device_name: Callable[[int, int], str]) -> Iterable[Sample]:
    """totals: (scope id, dev) -> (wait ns, requests, reads, bytes), summed here over scopes."""
    per_dev: dict[int, tuple[int, int]] = {}
    for (_sid, dev), (ns, requests, *_rest) in totals.items():
        prev_ns, prev_req = per_dev.get(dev, (0, 0))
        per_dev[dev] = (prev_ns + ns, prev_req + requests)
    for dev, (ns, requests) in sorted(per_dev.items()):
        labels = {"device": device_name(*dev_name_key(dev))}
        yield BLOCK_IO_INFERENCE_WAIT_SECONDS_TOTAL.emit(labels, ns / 1e9)
        yield BLOCK_IO_INFERENCE_REQUESTS_TOTAL.emit(labels, float(requests))


def tcp_samples(counts: Sequence[int], range_names: Sequence[str]) -> Iterable[Sample]:
    """counts[0]: outside every range; counts[i]: range_names[i - 1]."""
    for name, count in zip(["other", *range_names], counts, strict=False):
        yield TCP_RETRANSMITS_TOTAL.emit({"local_ports": name}, float(count))


def reclaim_samples(counts: Sequence[int], nss: Sequence[int]) -> Iterable[Sample]:
    """counts, nss: [scope][kind]."""
    for scope, sname in enumerate(SCOPES):
        for k, kind in enumerate(RECLAIM_KINDS):
            labels = {"scope": sname, "kind": kind}
            yield RECLAIM_STALLS_TOTAL.emit(labels, float(counts[scope * 2 + k]))
            yield RECLAIM_STALL_SECONDS_TOTAL.emit(labels, nss[scope * 2 + k] / 1e9)


def irq_samples(per_kind: Sequence[Sequence[int]]) -> Iterable[Sample]:
    """per_kind: [kind][cpu] ns."""
    for k, kind in enumerate(IRQ_KINDS):
        for cpu, ns in enumerate(per_kind[k]):
            yield IRQ_TIME_SECONDS_TOTAL.emit({"cpu": str(cpu), "kind": kind}, ns / 1e9)
