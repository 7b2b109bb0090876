"""Why was this request slow, the algorithm: its phases, the events that concern
it, and the causes ranked by the time they explain. Pure; agent/tracing/wording.py
puts the ranking into words and JSON, agent/tracing/correlate.py joins the two.

Phases come from vLLM's own timestamps (vllm/v1/metrics/stats.py): TTFT ends at
the first token; prefill is the `time_in_model_prefill` before it (from first
SCHEDULED); queue is `time_in_queue` before that (from QUEUED); whatever remains
between arrival and QUEUED is the frontend (tokenisation, input processing);
decode runs from the first to the last token; the rest of e2e is finishing.

A cause's explained time is the union of its events' intervals clipped to the
request, never their sum: a dozen vLLM threads waiting on the same busy CPU at
once delay the request once, not twelve times. What each event kind can explain
is its role in agent/event_kinds.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def bounds(r: RequestSpan) -> tuple[int, int, int, int, int, int]:
    """(arrival, queued, scheduled, first token, last token, end) on the realtime
    clock, each clamped inside [arrival, arrival + e2e] so inconsistent attributes
    cannot invert time."""
    start = r.start_ns
    end = start + max(int(r.e2e * 1e9), 0)
    first_token = _clamp(start + int(r.ttft * 1e9), start, end)
    scheduled = _clamp(first_token - int(r.prefill * 1e9), start, first_token)
    queued = _clamp(scheduled - int(r.queue * 1e9), start, scheduled)
    last_token = _clamp(first_token + int(r.decode * 1e9), first_token, end)
    return start, queued, scheduled, first_token, last_token, end


def phases(r: RequestSpan) -> list[Phase]:
    """The request's phases on the realtime clock, in order (see `bounds`)."""
    start, queued, scheduled, first_token, last_token, end = bounds(r)
    return [
        Phase("frontend", start, queued),
        Phase("queue", queued, scheduled),
        Phase("prefill", scheduled, first_token),
        Phase("decode", first_token, last_token),
        Phase("finish", last_token, end),
    ]


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


def phase_of(t_ns: int, phs: Sequence[Phase]) -> str:
    for p in phs:
        if p.start_ns <= t_ns < p.end_ns:
            return p.name
    if phs and t_ns < phs[0].start_ns:
        return "before"
    return "after"


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
    # A worker the agent does not supervise: the TCP ports its process listens on.
    listen_ports: frozenset[int] = frozenset()
    # The worker's batch limit (vLLM's --max-num-seqs in its command line), when known.
    batch_limit: int | None = None

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
    if subj == NODE:
        return _concerns_node(ev, scope)
    if subj.startswith("worker:"):
        return subj[7:] == scope.worker
    if subj.startswith("cgroup:"):
        return scope.cgroup is not None and subj[7:] == scope.cgroup
    if subj.startswith("nic:"):
        return subj[4:] in scope.nics
    return False


def _concerns_node(ev: Event, scope: RequestScope) -> bool:
    """A `node` event, by its kind's on_node rule (agent/event_kinds.py)."""
    k = KINDS.get(ev.kind)
    rule = k.on_node if k is not None else ""
    if rule == "port":
        ports = (ev.attributes.get("sport"), ev.attributes.get("dport"))
        mine = {scope.port} if scope.port is not None else scope.listen_ports
        if mine and any(isinstance(p, int) for p in ports):
            return any(p in mine for p in ports)
        return True
    if rule == "victim":
        victim = ev.attributes.get("cgroup")
        return not victim or scope.cgroup is None or victim == scope.cgroup
    return rule == "all"


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


def clip(ev: Event, start: int, end: int) -> tuple[int, int] | None:
    s = max(ev.start_ns, start)
    e = min(ev.end_ns, end)
    return (s, e) if e > s else None


def group_key(ev: Event, key_attr: str) -> str:
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
    iv = clip(ev, start, end)
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
    merged = merge_sorted(iv for ev in evs if (iv := clip(ev, req_start, req_end)))
    per_phase = {}
    for p in phs:
        ns = overlap_ns(merged, p.start_ns, p.end_ns)
        if ns > 0:
            per_phase[p.name] = ns / 1e9
    return sum(e - s for s, e in merged) / 1e9, per_phase, merged


@dataclass
class Ranked:
    """One cause: its kind, the key that separates it from others of the kind, its
    events in start order, and (for a timed one) the time it explains in all and
    per phase."""

    kind: str
    key: str
    events: list[Event]
    explained_s: float = 0.0
    per_phase: dict[str, float] = field(default_factory=dict)
    # An engine cause (agent/tracing/engine_causes.py) brings its own detail and words.
    detail: dict[str, object] | None = None
    where: str = ""


@dataclass
class Ranking:
    phases: list[Phase]
    relevant: list[Event]  # every event overlapping the request, in start order
    timed: list[Ranked]  # most time first
    instants: list[Ranked]  # severe first
    listed: int  # how many causes are worded (timed first, then instants)
    explained_s: float  # the union over the timed causes, at most e2e
    # Timed groups below the minimum share: evidence, most time first, not causes.
    evidence: list[Ranked] = field(default_factory=list)

    @property
    def more(self) -> int:
        return len(self.timed) + len(self.instants) - self.listed

    @property
    def top_kind(self) -> str | None:
        return self.timed[0].kind if self.timed else self.instants[0].kind if self.instants else None

    def add_derived(self, causes: Sequence[Ranked], e2e: float, min_share: float) -> None:
        """Add causes timed within what the timed ones left (the engine's): each
        below `min_share` of e2e becomes evidence, and the explained time stays
        within e2e."""
        if not causes:
            return
        kept = [c for c in causes if not (e2e > 0 and c.explained_s / e2e < min_share)]
        self.evidence = sorted([*self.evidence, *(c for c in causes if c not in kept)],
                               key=lambda t: (-t.explained_s, t.kind, t.key))[:MAX_CAUSES]
        if not kept:
            return
        self.timed = sorted([*self.timed, *kept], key=lambda t: (-t.explained_s, t.kind, t.key))
        self.listed = min(len(self.timed) + len(self.instants), MAX_CAUSES)
        self.explained_s = min(self.explained_s + sum(c.explained_s for c in kept), max(e2e, 0.0))

    @property
    def req_start(self) -> int:
        return self.phases[0].start_ns

    @property
    def req_end(self) -> int:
        return self.phases[-1].end_ns


def rank(r: RequestSpan, events: Iterable[Event], min_cause_s: float = 0.001, min_share: float = 0.0) -> Ranking:
    """Rank the causes among `events` (already known to concern the request). A timed
    group under `min_cause_s`, or under `min_share` of e2e, is no cause: the first
    stays among the events only, the second is listed as evidence."""
    phs = phases(r)
    req_start, req_end = phs[0].start_ns, phs[-1].end_ns
    relevant = sorted([e for e in events if e.start_ns <= req_end and e.end_ns >= req_start], key=_START_END)
    groups: dict[tuple[str, str], list[Event]] = {}
    for ev in relevant:
        c = _classify(ev)
        if c is None:
            continue
        gk = (c[0], group_key(ev, c[1]))
        lst = groups.get(gk)
        if lst is None:
            groups[gk] = [ev]
        else:
            lst.append(ev)

    timed: list[Ranked] = []
    instants: list[Ranked] = []
    evidence: list[Ranked] = []
    all_intervals: list[tuple[int, int]] = []
    aggregate_s = 0.0
    for (kind, key), evs in groups.items():
        if KINDS[kind].role is Role.DURATION:
            explained_s, per_phase, merged = _time_of(evs, phs, req_start, req_end)
            if explained_s < min_cause_s:
                continue
            if r.e2e > 0 and explained_s / r.e2e < min_share:
                evidence.append(Ranked(kind, key, evs, explained_s, per_phase))
                continue
            all_intervals.extend(merged)
            if not merged:
                aggregate_s += explained_s
            timed.append(Ranked(kind, key, evs, explained_s, per_phase))
        else:
            instants.append(Ranked(kind, key, evs))
    # Time explained first; then moments (no duration), the severe ones first. Only
    # the top causes are worded: a contended node can produce dozens per request.
    timed.sort(key=lambda t: (-t.explained_s, t.kind, t.key))
    evidence.sort(key=lambda t: (-t.explained_s, t.kind, t.key))
    instants.sort(key=lambda t: (not KINDS[t.kind].severe, t.kind))
    listed = min(len(timed) + len(instants), MAX_CAUSES)
    # Aggregate time has no intervals to merge with the rest: added, bounded by e2e.
    explained = min(union_ns(all_intervals) / 1e9 + aggregate_s, max(r.e2e, 0.0))
    return Ranking(phs, relevant, timed, instants, listed, explained, evidence[:MAX_CAUSES])
