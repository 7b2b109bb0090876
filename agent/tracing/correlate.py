"""Why was this request slow: phases, the events that concern them, ranked causes.

Pure logic: a RequestSpan, the request's scope (worker, cgroup, GPUs, pids) and
the events overlapping it in, an Explanation out. The pipeline does the lookups.

Phases come from vLLM's own timestamps (vllm/v1/metrics/stats.py): TTFT ends at
the first token; prefill is the `time_in_model_prefill` before it (from first
SCHEDULED); queue is `time_in_queue` before that (from QUEUED); whatever remains
between arrival and QUEUED is the frontend (tokenisation, input processing);
decode runs from the first to the last token; the rest of e2e is finishing.

A cause's explained time is the union of its events' intervals clipped to the
request, never their sum: a dozen vLLM threads waiting on the same busy CPU at
once delay the request once, not twelve times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from agent.event_kinds import KINDS, Role
from agent.events import NODE, Event
from agent.tracing.spans import RequestSpan

MAX_CAUSES = 10
TTFT_PHASES = frozenset(("frontend", "queue", "prefill"))


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    start_ns: int
    end_ns: int

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def phases(r: RequestSpan) -> list[Phase]:
    """The request's phases on the realtime clock, in order, each clamped inside
    [arrival, arrival + e2e] so inconsistent attributes cannot invert time."""
    start = r.start_ns
    end = start + max(int(r.e2e * 1e9), 0)
    first_token = _clamp(start + int(r.ttft * 1e9), start, end)
    scheduled = _clamp(first_token - int(r.prefill * 1e9), start, first_token)
    queued = _clamp(scheduled - int(r.queue * 1e9), start, scheduled)
    last_token = _clamp(first_token + int(r.decode * 1e9), first_token, end)
    return [
        Phase("frontend", start, queued),
        Phase("queue", queued, scheduled),
        Phase("prefill", scheduled, first_token),
        Phase("decode", first_token, last_token),
        Phase("finish", last_token, end),
    ]


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


@dataclass(frozen=True)
class RequestScope:
    """What a request runs on. `gpus` None means the worker's GPUs are unknown, so
    any GPU's events concern it (a one-worker node is the common case). `pids`
    holds the worker's thread ids (eBPF names the thread that issued an I/O)."""

    worker: str
    cgroup: str | None = None
    gpus: tuple[str, ...] | None = ()
    pids: frozenset[int] = frozenset()
    port: int | None = None
    nics: tuple[str, ...] = ()

    def subjects(self) -> list[str]:
        out = [f"worker:{self.worker}", NODE]
        if self.cgroup:
            out.append(f"cgroup:{self.cgroup}")
        for uuid in self.gpus or ():
            out.append(f"gpu:{uuid}")
        for nic in self.nics:
            out.append(f"nic:{nic}")
        return out

    def subject_prefixes(self) -> list[str]:
        """Subjects that cannot be named in advance and are filtered by `concerns`."""
        out = ["dev:"]
        if self.gpus is None:
            out.append("gpu:")
        return out


def concerns(ev: Event, scope: RequestScope) -> bool:
    """Whether an event found by subject or prefix concerns this request."""
    subj = ev.subject
    if subj.startswith("dev:"):
        # A block device is shared; its stall concerns the request when a worker thread issued it.
        issuer = ev.attributes.get("issuer_pid")
        cg = ev.attributes.get("cgroup")
        return (isinstance(issuer, int) and issuer in scope.pids) or (cg is not None and cg == scope.cgroup)
    if subj.startswith("gpu:"):
        return scope.gpus is None or subj[4:] in scope.gpus
    if subj == NODE and ev.kind == "tcp_retransmit" and scope.port is not None:
        ports = (ev.attributes.get("sport"), ev.attributes.get("dport"))
        if any(isinstance(p, int) for p in ports):
            return scope.port in ports
    if subj.startswith("worker:"):
        return subj[7:] == scope.worker
    if subj.startswith("cgroup:"):
        return scope.cgroup is not None and subj[7:] == scope.cgroup
    if subj.startswith("nic:"):
        return subj[4:] in scope.nics
    return subj == NODE


def _classify(ev: Event) -> tuple[str, str] | None:
    """(cause kind, attribute that keys its group) of an event that can be a cause,
    else None (agent/event_kinds.py says which can). Aggregate windows and the
    outliers they include are one cause kind."""
    k = KINDS.get(ev.kind)
    if k is None:
        return None
    if k.role is Role.AGGREGATE:
        k = KINDS[k.cause]
    if k.role is Role.INSTANT:
        return k.name, "subject"
    if k.role is not Role.DURATION:
        return None
    return k.name, k.group_by


@dataclass
class Cause:
    kind: str
    label: str
    key: str
    explained_s: float
    share: float
    text: str
    events: int
    phases: dict[str, float] = field(default_factory=dict)
    detail: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "label": self.label,
            "key": self.key,
            "explained_seconds": round(self.explained_s, 6),
            "share": round(self.share, 4),
            "text": self.text,
            "events": self.events,
            "phases": {k: round(v, 6) for k, v in self.phases.items()},
            "detail": self.detail,
        }


@dataclass
class Explanation:
    """`causes` are worded on first use (explain, forwarding), not at ingest: most
    requests are never asked about, and wording is most of the cost."""

    request: RequestSpan
    worker: str
    phases: list[Phase]
    word_causes: Callable[[], list[Cause]]
    events: list[Event]
    slow: list[dict[str, object]] = field(default_factory=list)
    explained_s: float = 0.0
    more_causes: int = 0  # ranked below the ones listed
    top_kind: str | None = None
    context: list[str] = field(default_factory=list)
    scope: RequestScope | None = None
    min_cause_s: float = 0.001
    _causes: list[Cause] | None = None

    @property
    def causes(self) -> list[Cause]:
        if self._causes is None:
            self._causes = self.word_causes()
        return self._causes

    @property
    def is_slow(self) -> bool:
        return bool(self.slow)

    @property
    def verdict(self) -> str:
        return self.causes[0].text if self.causes else "no known cause"

    def to_json(self, with_events: bool = True) -> dict[str, object]:
        r = self.request
        out: dict[str, object] = {
            "trace_id": r.trace_id,
            "span_id": r.span_id,
            "request_id": r.request_id,
            "worker": self.worker,
            "model_name": r.model_name,
            "start_unix_nano": r.start_ns,
            "latency_seconds": {
                "ttft": r.ttft, "e2e": r.e2e, "queue": r.queue, "prefill": r.prefill,
                "decode": r.decode, "tpot": r.tpot,
            },
            "tokens": {"prompt": r.prompt_tokens, "completion": r.completion_tokens},
            "phases": [
                {"name": p.name, "start_unix_nano": p.start_ns, "end_unix_nano": p.end_ns,
                 "seconds": round(p.duration_s, 6)}
                for p in self.phases
            ],
            "slow": self.slow,
            "verdict": self.verdict,
            "explained_seconds": round(self.explained_s, 6),
            "explained_share": round(self.explained_s / r.e2e, 4) if r.e2e > 0 else 0.0,
            "causes": [c.to_json() for c in self.causes],
            "more_causes": self.more_causes,
            "context": self.context,
        }
        if with_events:
            out["events"] = [_event_json(e, self.phases) for e in self.events]
        return out


def _event_json(ev: Event, phs: Sequence[Phase]) -> dict[str, object]:
    d = ev.to_json()
    d["phase"] = phase_of(ev.start_ns, phs)
    return d


def phase_of(t_ns: int, phs: Sequence[Phase]) -> str:
    for p in phs:
        if p.start_ns <= t_ns < p.end_ns:
            return p.name
    if phs and t_ns < phs[0].start_ns:
        return "before"
    return "after"


def merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Disjoint, sorted intervals covering the same time as `intervals`."""
    return merge_sorted(sorted(intervals))


def merge_sorted(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """merge() of intervals already in start order."""
    out: list[tuple[int, int]] = []
    for s, e in intervals:
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def union_ns(intervals: Iterable[tuple[int, int]]) -> int:
    return sum(e - s for s, e in merge(intervals))


def overlap_ns(merged: Sequence[tuple[int, int]], start: int, end: int) -> int:
    total = 0
    for s, e in merged:
        if s >= end:
            break
        lo = s if s > start else start
        hi = e if e < end else end
        if hi > lo:
            total += hi - lo
    return total


def _clip(ev: Event, start: int, end: int) -> tuple[int, int] | None:
    s = max(ev.start_ns, start)
    e = min(ev.end_ns, end)
    return (s, e) if e > s else None


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def _group_key(ev: Event, key_attr: str) -> str:
    if ev.kind == "io_pressure":  # a window's subject is the scope; its device is the key
        return f"dev:{ev.attributes.get('device', '?')}"
    if key_attr == "subject":
        return ev.subject
    v = ev.attributes.get(key_attr)
    return f"{ev.subject}|{v}" if ev.kind.startswith("gpu_") else str(v if v is not None else "?")


_START_END = attrgetter("start_ns", "end_ns")


def _pressure_s(ev: Event, start: int, end: int) -> float:
    """What an aggregate window explains of [start, end]: its summed waits scaled by
    the share of the window inside, assuming waits spread evenly over it, and never
    more than that overlap (threads waiting side by side delay a request once)."""
    window = ev.end_ns - ev.start_ns
    iv = _clip(ev, start, end)
    if iv is None or window <= 0:
        return 0.0
    inside = iv[1] - iv[0]
    return min(ev.magnitude * inside / window, inside / 1e9)


def _time_of(evs: list[Event], phs: Sequence[Phase], req_start: int, req_end: int) -> tuple[
        float, dict[str, float], list[tuple[int, int]]]:
    """(explained seconds, seconds per phase, intervals for the union over causes).

    With aggregate windows in the group, time comes from them alone: they already
    sum every wait, outliers included, so the outliers stay as evidence (which
    thread waited, who held the CPU, which request) and are not counted again."""
    windows = [ev for ev in evs if KINDS[ev.kind].role is Role.AGGREGATE]
    if windows:
        per_phase = {}
        for p in phs:
            t = sum(_pressure_s(ev, p.start_ns, p.end_ns) for ev in windows)
            if t > 0:
                per_phase[p.name] = t
        return sum(_pressure_s(ev, req_start, req_end) for ev in windows), per_phase, []
    # evs are in start order, and clipping keeps it.
    merged = merge_sorted(iv for ev in evs if (iv := _clip(ev, req_start, req_end)))
    per_phase = {}
    for p in phs:
        ns = overlap_ns(merged, p.start_ns, p.end_ns)
        if ns > 0:
            per_phase[p.name] = ns / 1e9
    return sum(e - s for s, e in merged) / 1e9, per_phase, merged


def explain(
    r: RequestSpan,
    scope: RequestScope,
    events: Iterable[Event],
    slow: list[dict[str, object]] | None = None,
    min_cause_s: float = 0.001,
) -> Explanation:
    """Rank the causes among `events` (already known to concern the request)."""
    phs = phases(r)
    req_start, req_end = phs[0].start_ns, phs[-1].end_ns
    relevant = sorted([e for e in events if e.start_ns <= req_end and e.end_ns >= req_start], key=_START_END)
    groups: dict[tuple[str, str], list[Event]] = {}
    for ev in relevant:
        c = _classify(ev)
        if c is None:
            continue
        gk = (c[0], _group_key(ev, c[1]))
        lst = groups.get(gk)
        if lst is None:
            groups[gk] = [ev]
        else:
            lst.append(ev)

    timed: list[tuple[float, str, str, list[Event], dict[str, float]]] = []
    instants: list[tuple[str, str, list[Event]]] = []
    all_intervals: list[tuple[int, int]] = []
    aggregate_s = 0.0
    for (kind, key), evs in groups.items():
        if KINDS[kind].role is Role.DURATION:
            explained_s, per_phase, merged = _time_of(evs, phs, req_start, req_end)
            if explained_s < min_cause_s:
                continue
            all_intervals.extend(merged)
            if not merged:
                aggregate_s += explained_s
            timed.append((explained_s, kind, key, evs, per_phase))
        else:
            instants.append((kind, key, evs))
    # Time explained first; then moments (no duration), the severe ones first. Only
    # the top causes are worded: a contended node can produce dozens per request.
    timed.sort(key=lambda t: (-t[0], t[1], t[2]))
    instants.sort(key=lambda t: (not KINDS[t[0]].severe, t[0]))
    listed = min(len(timed) + len(instants), MAX_CAUSES)

    def word() -> list[Cause]:
        causes = [_duration_cause(r, kind, key, evs, explained_s, per_phase, req_start, req_end)
                  for explained_s, kind, key, evs, per_phase in timed[:MAX_CAUSES]]
        causes.extend(_instant_cause(r, kind, key, evs, phs) for kind, key, evs in instants[: listed - len(causes)])
        return causes

    # Aggregate time has no intervals to merge with the rest: added, bounded by e2e.
    explained = min(union_ns(all_intervals) / 1e9 + aggregate_s, max(r.e2e, 0.0))
    top = timed[0][1] if timed else instants[0][0] if instants else None
    context = sorted({KINDS[ev.kind].context_text(ev.attributes) for ev in relevant
                      if ev.kind in KINDS and KINDS[ev.kind].role is Role.CONTEXT})
    return Explanation(r, scope.worker, phs, word, relevant, slow or [], explained,
                       len(timed) + len(instants) - listed, top, context, scope, min_cause_s)


def _basis(r: RequestSpan, per_phase: Mapping[str, float]) -> tuple[str, float]:
    """Which latency a cause is best stated against: TTFT when it fell before the
    first token, decode when after, else the whole request."""
    touched = {p for p, s in per_phase.items() if s > 0}
    if touched and touched <= TTFT_PHASES:
        return "TTFT", r.ttft
    if touched and touched <= {"decode"}:
        return "decode", r.decode
    return "e2e", r.e2e


def _duration_cause(
    r: RequestSpan, kind: str, key: str, evs: list[Event], explained: float, per_phase: dict[str, float],
    req_start: int, req_end: int,
) -> Cause:
    label = KINDS[kind].label
    basis_name, basis_s = _basis(r, per_phase)
    detail, where = _detail(kind, evs, req_start, req_end)
    text = f"{label} {_ms(explained)} of {_ms(basis_s)} {basis_name}{where}"
    share = min(1.0, explained / r.e2e) if r.e2e > 0 else 0.0
    return Cause(kind, label, key, explained, share, text, len(evs), per_phase, detail)


def _detail(kind: str, evs: list[Event], req_start: int, req_end: int) -> tuple[dict[str, object], str]:
    first = evs[0]
    a = first.attributes
    if kind == "runqueue_wait":
        cpu = a.get("cpu")
        holders: dict[tuple[object, object], int] = {}
        for ev in evs:
            pid = ev.attributes.get("holder_pid")
            iv = _clip(ev, req_start, req_end)
            if pid is not None and iv:
                who = (pid, ev.attributes.get("holder_comm", "?"))
                holders[who] = holders.get(who, 0) + iv[1] - iv[0]
        where = f" on CPU {cpu}" if cpu is not None else ""
        detail: dict[str, object] = {"cpu": cpu}
        if holders:
            (holder, comm), _ = max(holders.items(), key=lambda kv: kv[1])
            where += f", CPU held by pid {holder} ({comm})"
            detail["holder_pid"], detail["holder_comm"] = holder, comm
        tids = sorted({ev.attributes["tid"] for ev in evs if isinstance(ev.attributes.get("tid"), int)})
        if tids:
            detail["tids"] = tids[:16]
        windows = [ev for ev in evs if ev.kind == "runqueue_pressure"]
        if windows:
            waits = sum(int(ev.attributes.get("waits", 0)) for ev in windows)
            detail["waits"] = waits
            detail["outliers"] = len(evs) - len(windows)
            where += f", {waits} waits"
        return detail, where
    if kind == "io_stall":
        dev = _group_key(first, "subject").split(":", 1)[1]
        ops: set[str] = set()
        requests = 0
        for ev in evs:
            if ev.kind == "io_pressure":
                reads = int(ev.attributes.get("reads", 0))
                n = int(ev.attributes.get("requests", 0))
                requests += n
                ops.update(op for op, k in (("read", reads), ("write/other", n - reads)) if k > 0)
            else:
                ops.add(str(ev.attributes.get("op", "?")))
        detail = {"device": dev, "ops": sorted(ops)}
        where = f" on {dev} ({'/'.join(sorted(ops))})"
        if requests:
            detail["requests"] = requests
            where += f", {requests} requests"
        slowest = max((ev for ev in evs if ev.kind == "io_stall"), key=lambda ev: ev.magnitude, default=None)
        if slowest is not None:
            detail["slowest_seconds"] = round(slowest.magnitude, 6)
            detail["slowest_queued_seconds"] = slowest.attributes.get("queued_seconds")
        return detail, where
    if kind == "gpu_throttle":
        uuid = first.subject.split(":", 1)[1]
        return {"gpu": uuid, "reason": a.get("reason")}, f" ({a.get('reason', '?')}) on {uuid}"
    if kind == "gpu_clock_drop":
        uuid = first.subject.split(":", 1)[1]
        drop = max(ev.magnitude for ev in evs)
        return {"gpu": uuid, "drop_hertz": drop}, f" by {drop / 1e6:.0f} MHz on {uuid}"
    if kind == "reclaim_stall":
        return {"subject": first.subject}, ""
    return {}, ""


def _instant_cause(r: RequestSpan, kind: str, key: str, evs: list[Event], phs: Sequence[Phase]) -> Cause:
    label = KINDS[kind].label
    first = evs[0]
    offset_ms = (first.start_ns - r.start_ns) / 1e6
    where = phase_of(first.start_ns, phs)
    a = first.attributes
    if kind == "gpu_xid":
        what = f"{label} {a.get('xid', '?')} ({a.get('action', '?')}) on {first.subject.split(':', 1)[1]}"
    elif kind == "tcp_retransmit":
        what = f"{label}: {sum(ev.magnitude or 1 for ev in evs):.0f} segments"
    elif kind == "oom_kill":
        what = f"{label} of pid {a.get('pid', '?')} ({a.get('comm', '?')})"
    else:
        what = label + (f" ({a['reason']})" if "reason" in a else "")
    count = f" ×{len(evs)}" if len(evs) > 1 and kind != "tcp_retransmit" else ""
    text = f"{what}{count} at +{offset_ms:.0f} ms ({where})"
    detail: dict[str, object] = dict(a)
    return Cause(kind, label, key, 0.0, 0.0, text, len(evs), {where: 0.0}, detail)
