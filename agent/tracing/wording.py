"""Why was this request slow, in words: each ranked cause stated against the
latency it hurt, with its evidence, and the explanation as JSON for `infernode
explain`, the span attributes and the API. The ranking itself is
agent/tracing/ranking.py; nothing here changes what is ranked or how much time a
cause explains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.event_kinds import KINDS, Role
from agent.events import Event
from agent.tracing.delivery import ClientDelay
from agent.tracing.engine_causes import EngineSettings
from agent.tracing.engine_load import LoadView
from agent.tracing.ranking import MAX_CAUSES, TTFT_PHASES, Phase, Ranked, Ranking, RequestScope, clip, group_key, phase_of
from agent.tracing.spans import RequestSpan


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
    min_share: float = 0.0
    word_evidence: Callable[[], list[Cause]] = list
    # The worker's load when asked (agent/tracing/engine_load.py), for the engine
    # causes: kept so that a re-explanation sees the neighbours that arrived since.
    load: Callable[[], LoadView | None] | None = None
    engine: EngineSettings | None = None
    # Seconds each kind of timed cause explains (unworded, for the metrics).
    seconds_by_kind: dict[str, float] = field(default_factory=dict)
    # The delay its client saw outside the span (agent/tracing/delivery.py), looked
    # up when asked: the retransmits of a response's tail come after its span ends.
    client: Callable[[], ClientDelay | None] | None = None
    _causes: list[Cause] | None = None
    _evidence: list[Cause] | None = None

    @property
    def evidence(self) -> list[Cause]:
        """What the request's own threads and devices went through that was too
        small a share to have made it slow (ExplainSettings.min_cause_share)."""
        if self._evidence is None:
            self._evidence = self.word_evidence()
        return self._evidence

    @property
    def causes(self) -> list[Cause]:
        if self._causes is None:
            self._causes = self.word_causes()
        return self._causes

    @property
    def is_slow(self) -> bool:
        return bool(self.slow)

    @property
    def client_delay(self) -> ClientDelay | None:
        return self.client() if self.client is not None else None

    @property
    def verdict(self) -> str:
        if self.causes:
            return self.causes[0].text
        delay = self.client_delay
        if delay is not None and delay.attributed and (delay.estimated_s > 0 or delay.after_span_s > 0):
            return delay.text
        return "no known cause"

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
            "evidence": [c.to_json() for c in self.evidence],
            "context": self.context,
        }
        delay = self.client_delay
        out["client_delay"] = delay.to_json() if delay is not None else None
        if with_events:
            out["events"] = [_event_json(e, self.phases) for e in self.events]
        return out


def _event_json(ev: Event, phs: Sequence[Phase]) -> dict[str, object]:
    d = ev.to_json()
    d["phase"] = phase_of(ev.start_ns, phs)
    return d


def word_causes(r: RequestSpan, ranking: Ranking) -> list[Cause]:
    """The listed causes, worded: the timed ones (most time first), then the instants."""
    causes = [_duration_cause(r, c, ranking.req_start, ranking.req_end) for c in ranking.timed[:MAX_CAUSES]]
    causes.extend(_instant_cause(r, c, ranking.phases) for c in ranking.instants[: ranking.listed - len(causes)])
    return causes


def word_evidence(r: RequestSpan, ranking: Ranking) -> list[Cause]:
    """Timed groups below the minimum share, worded as causes would be."""
    return [_duration_cause(r, c, ranking.req_start, ranking.req_end) for c in ranking.evidence]


def context(ranking: Ranking) -> list[str]:
    """What was true of the node during the request (a drifted sysctl, a changed
    component), each once, in its catalog wording."""
    return sorted({KINDS[ev.kind].context_text(ev.attributes) for ev in ranking.relevant
                   if ev.kind in KINDS and KINDS[ev.kind].role is Role.CONTEXT})


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def _basis(r: RequestSpan, per_phase: Mapping[str, float]) -> tuple[str, float]:
    """Which latency a cause is best stated against: TTFT when it fell before the
    first token, decode when after, else the whole request."""
    touched = {p for p, s in per_phase.items() if s > 0}
    if touched and touched <= TTFT_PHASES:
        return "TTFT", r.ttft
    if touched and touched <= {"decode"}:
        return "decode", r.decode
    return "e2e", r.e2e


def _duration_cause(r: RequestSpan, c: Ranked, req_start: int, req_end: int) -> Cause:
    label = KINDS[c.kind].label
    basis_name, basis_s = _basis(r, c.per_phase)
    if c.detail is not None:  # an engine cause, worded where it was derived
        detail, where = c.detail, c.where
    else:
        detail, where = _detail(c.kind, c.events, req_start, req_end)
    text = f"{label} {_ms(c.explained_s)} of {_ms(basis_s)} {basis_name}{where}"
    share = min(1.0, c.explained_s / r.e2e) if r.e2e > 0 else 0.0
    return Cause(c.kind, label, c.key, c.explained_s, share, text, len(c.events), c.per_phase, detail)


def _tids(evs: list[Event]) -> list[int]:
    """The thread ids the events name, sorted."""
    return sorted({t for ev in evs if isinstance(t := ev.attributes.get("tid"), int)})


def _detail(kind: str, evs: list[Event], req_start: int, req_end: int) -> tuple[dict[str, object], str]:
    first = evs[0]
    a = first.attributes
    if kind == "runqueue_wait":
        cpu = a.get("cpu")
        holders: dict[tuple[object, object, object, object], int] = {}
        for ev in evs:
            pid = ev.attributes.get("holder_pid")
            iv = clip(ev, req_start, req_end)
            if pid is not None and iv:
                who = (pid, ev.attributes.get("holder_comm", "?"), ev.attributes.get("holder_process_pid"),
                       ev.attributes.get("holder_process_comm"))
                holders[who] = holders.get(who, 0) + iv[1] - iv[0]
        where = f" on CPU {cpu}" if cpu is not None else ""
        detail: dict[str, object] = {"cpu": cpu}
        if holders:
            (holder, comm, process, process_comm), _ = max(holders.items(), key=lambda kv: kv[1])
            if holder == 0:
                # The idle task ran before the thread did: nothing held the CPU, the
                # thread waited for the CPU to wake (C-state exit, wake-up IPI).
                where += ", the CPU was idle: a wake-up delay, not a busy CPU"
                detail["wakeup_delay"] = True
            else:
                # The kernel's "pid" of a task is its thread id.
                where += f", CPU held by thread {holder} ({comm})"
                detail["holder_pid"], detail["holder_comm"] = holder, comm
                if process is not None:
                    where += f" of process {process}" + (f" ({process_comm})" if process_comm != comm else "")
                    detail["holder_process_pid"], detail["holder_process_comm"] = process, process_comm
        tids = _tids(evs)
        if tids:
            detail["tids"] = tids[:16]
        return detail, where + _window_count(evs, "runqueue_pressure", "waits", detail)
    if kind == "io_stall":
        dev = group_key(first, "subject").split(":", 1)[1]
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
        memcg = a.get("kind") == "memcg"
        tids = _tids(evs)
        comms = sorted({str(c) for ev in evs if (c := ev.attributes.get("comm"))})
        cgroup = str(a.get("cgroup") or "")
        where = " (the cgroup's memory limit)" if memcg else " (global direct reclaim)"
        if tids:
            where += f" in thread {tids[0]}" + (f" ({comms[0]})" if comms else "")
            if len(tids) > 1:
                where += f" and {len(tids) - 1} more"
        if cgroup:
            where += f", cgroup {cgroup}"
        detail = {"reclaim": "memcg" if memcg else "direct", "tids": tids[:16], "comms": comms[:8], "cgroup": cgroup}
        return detail, where + _window_count(evs, "reclaim_pressure", "stalls", detail)
    return {}, ""


def _window_count(evs: Sequence[Event], window_kind: str, counted: str, detail: dict[str, object]) -> str:
    """An aggregate cause's count (its windows' `counted` attribute summed) and its
    outliers, into `detail`; the words to append, empty without windows."""
    windows = [ev for ev in evs if ev.kind == window_kind]
    if not windows:
        return ""
    n = sum(int(ev.attributes.get(counted, 0)) for ev in windows)
    detail[counted] = n
    detail["outliers"] = len(evs) - len(windows)
    return f", {n} {counted}"


def _instant_cause(r: RequestSpan, c: Ranked, phs: Sequence[Phase]) -> Cause:
    kind, evs = c.kind, c.events
    label = KINDS[kind].label
    first = evs[0]
    offset_ms = (first.start_ns - r.start_ns) / 1e6
    where = phase_of(first.start_ns, phs)
    a = first.attributes
    if kind == "gpu_xid":
        what = f"{label} {a.get('xid', '?')} ({a.get('action', '?')}) on {first.subject.split(':', 1)[1]}"
    elif kind == "oom_kill":
        what = f"{label} of pid {a.get('pid', '?')} ({a.get('comm', '?')})"
    else:
        what = label + (f" ({a['reason']})" if "reason" in a else "")
    count = f" ×{len(evs)}" if len(evs) > 1 else ""
    text = f"{what}{count} at +{offset_ms:.0f} ms ({where})"
    detail: dict[str, object] = dict(a)
    return Cause(kind, label, c.key, 0.0, 0.0, text, len(evs), {where: 0.0}, detail)
