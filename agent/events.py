"""Node events and the bounded, time-indexed store the correlation reads.

An event is something that happened on the node over an interval: a run-queue
wait, a GPU throttle window, an XID, a worker restart, tuning drift. Timestamps are
realtime nanoseconds (CLOCK_REALTIME), the clock OpenTelemetry spans use, so a
request span and the events that overlapped it can be compared directly. Sources
with another clock (eBPF's monotonic bpf_ktime_get_ns) convert before adding.

Subjects name what an event concerns, as "<kind>:<id>":
  cgroup:<path>   worker:<name>   tid:<n>   cpu:<n>
  gpu:<uuid>            nic:<ifname>    dev:<block device>    node
so a query for a request asks for its worker, its cgroup, its GPUs, its NIC and
"node". The kinds and their subjects are listed in agent/event_kinds.py.
"""

from __future__ import annotations

import bisect
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.event_kinds import KINDS, Role, UndeclaredEventKind

AttrValue = str | int | float | bool

NODE = "node"


@dataclass(frozen=True, slots=True)
class Event:
    start_ns: int
    end_ns: int
    kind: str
    subject: str
    magnitude: float = 0.0
    attributes: Mapping[str, AttrValue] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    def overlaps(self, start_ns: int, end_ns: int) -> bool:
        return self.start_ns <= end_ns and self.end_ns >= start_ns

    def to_json(self) -> dict[str, object]:
        return {
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "kind": self.kind,
            "subject": self.subject,
            "magnitude": self.magnitude,
            "attributes": dict(self.attributes),
        }


def now_ns() -> int:
    return time.time_ns()


# Measured with tracemalloc on CPython 3.11 (tests/unit/core/test_events.py keeps
# these honest within a factor of 1.25): a slotted Event with its ints, float and
# empty attribute dict, its list and index slots, and its subject string (counted
# because subjects are usually formatted per event; kinds and attribute keys are
# literals shared by every event, so they cost nothing per event).
_EVENT_OVERHEAD = 270 + 49  # event + str object header of the subject
_ATTR_DICT = 120  # a non-empty dict's table over an empty one
_ATTR_SLOT = 8  # per entry, amortised over table growth
_STR_HEADER = 49
_NUMBER = 28  # a boxed int or float; bools are singletons


def approx_size(ev: Event) -> int:
    size = _EVENT_OVERHEAD + len(ev.subject)
    if ev.attributes:
        size += _ATTR_DICT
        for v in ev.attributes.values():
            size += _ATTR_SLOT
            if isinstance(v, str):
                size += _STR_HEADER + len(v)
            elif not isinstance(v, bool):
                size += _NUMBER
    return size


def subject_form(subject: str) -> str:
    """"dev:" for "dev:nvme0n1"; the subject itself when it has no id ("node")."""
    i = subject.find(":")
    return subject if i < 0 else subject[: i + 1]


class _Chunk:
    __slots__ = ("events", "by_subject", "by_form", "min_start", "max_end", "nbytes")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.by_subject: dict[str, list[Event]] = {}
        # "dev:" -> the dev: subjects in this chunk, for queries by subject form.
        self.by_form: dict[str, list[str]] = {}
        self.min_start = sys.maxsize
        self.max_end = -sys.maxsize
        self.nbytes = 0

    def add(self, ev: Event, size: int) -> None:
        self.events.append(ev)
        lst = self.by_subject.get(ev.subject)
        if lst is None:
            lst = self.by_subject[ev.subject] = []
            self.by_form.setdefault(subject_form(ev.subject), []).append(ev.subject)
        lst.append(ev)
        if ev.start_ns < self.min_start:
            self.min_start = ev.start_ns
        if ev.end_ns > self.max_end:
            self.max_end = ev.end_ns
        self.nbytes += size


class EventStore:
    """Bounded in memory; evicts the oldest-added events first and counts them.

    Events are kept in arrival-ordered chunks, each with its time span and a
    per-subject index, so a query touches only chunks whose span overlaps the
    window and, inside them, only the subjects asked for. Eviction drops whole
    chunks, oldest first; the bound holds after every add.

    Finding those chunks is a bisection, not a scan: `_end_prefix_max[i]` is the
    latest end among chunks 0..i and `_start_suffix_min[i]` the earliest start among
    chunks i..n, both non-decreasing, so the chunks before the first whose prefix
    max reaches the window, and after the last whose suffix min is inside it, cannot
    overlap. Arrival order follows time closely (sources add events as they end), so
    the candidates are the few chunks around the window; a late event only widens
    the range, it never hides a match.
    """

    CHUNK_EVENTS = 256

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._chunks: list[_Chunk] = []
        self._end_prefix_max: list[int] = []
        self._start_suffix_min: list[int] = []
        self._lock = threading.Lock()
        self._bytes = 0
        self._count = 0
        self.evicted_total = 0
        self.added_total: dict[str, int] = {}

    def add(self, ev: Event) -> None:
        """Store `ev`; raises UndeclaredEventKind for a kind agent/event_kinds.py does
        not declare (a writer's typo fails where it is made, not in a correlation)."""
        declared = KINDS.get(ev.kind)
        if declared is None:
            raise UndeclaredEventKind(f"event kind {ev.kind!r} is not declared in agent/event_kinds.py")
        if declared.role is Role.DERIVED:
            raise UndeclaredEventKind(f"event kind {ev.kind!r} is a derived cause, never stored as an event")
        if ev.end_ns < ev.start_ns:
            ev = Event(ev.start_ns, ev.start_ns, ev.kind, ev.subject, ev.magnitude, ev.attributes)
        size = approx_size(ev)
        with self._lock:
            chunk = self._chunks[-1] if self._chunks else None
            if chunk is None or len(chunk.events) >= self.CHUNK_EVENTS:
                chunk = _Chunk()
                self._chunks.append(chunk)
                self._end_prefix_max.append(self._end_prefix_max[-1] if self._end_prefix_max else -sys.maxsize)
                self._start_suffix_min.append(sys.maxsize)
            chunk.add(ev, size)
            if ev.end_ns > self._end_prefix_max[-1]:
                self._end_prefix_max[-1] = ev.end_ns
            smin = self._start_suffix_min
            k = len(smin) - 1
            while k >= 0 and smin[k] > ev.start_ns:
                smin[k] = ev.start_ns
                k -= 1
            self._bytes += size
            self._count += 1
            self.added_total[ev.kind] = self.added_total.get(ev.kind, 0) + 1
            if self._bytes > self.max_bytes and len(self._chunks) > 1:
                drop = 0
                while self._bytes > self.max_bytes and len(self._chunks) - drop > 1:
                    old = self._chunks[drop]
                    self._bytes -= old.nbytes
                    self._count -= len(old.events)
                    self.evicted_total += len(old.events)
                    drop += 1
                del self._chunks[:drop]
                self._rebuild_bounds()

    def _rebuild_bounds(self) -> None:
        pmax: list[int] = []
        cur = -sys.maxsize
        for c in self._chunks:
            cur = max(cur, c.max_end)
            pmax.append(cur)
        smin: list[int] = [0] * len(self._chunks)
        cur = sys.maxsize
        for i in range(len(self._chunks) - 1, -1, -1):
            cur = min(cur, self._chunks[i].min_start)
            smin[i] = cur
        self._end_prefix_max = pmax
        self._start_suffix_min = smin

    def extend(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.add(ev)

    def query(
        self,
        start_ns: int,
        end_ns: int,
        subjects: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
        subject_prefixes: Iterable[str] = (),
    ) -> list[Event]:
        """Events overlapping [start_ns, end_ns], optionally only for these subjects
        (plus every subject of the forms in `subject_prefixes`, e.g. "dev:") and
        kinds, sorted by start time."""
        subj = None if subjects is None else tuple(set(subjects))
        prefixes = tuple(subject_prefixes)
        kind_set = None if kinds is None else frozenset(kinds)
        out: list[Event] = []
        with self._lock:
            lo = bisect.bisect_left(self._end_prefix_max, start_ns)
            hi = bisect.bisect_right(self._start_suffix_min, end_ns)
            for c in self._chunks[lo:hi]:
                if c.min_start > end_ns or c.max_end < start_ns:
                    continue
                if subj is None:
                    candidates: Iterable[Event] = c.events
                    self._filter(candidates, start_ns, end_ns, kind_set, out)
                else:
                    for s in subj:
                        lst = c.by_subject.get(s)
                        if lst:
                            self._filter(lst, start_ns, end_ns, kind_set, out)
                    for form in prefixes:
                        for s in c.by_form.get(form, ()):
                            if s not in subj:
                                self._filter(c.by_subject[s], start_ns, end_ns, kind_set, out)
        out.sort(key=lambda e: (e.start_ns, e.end_ns))
        return out

    @staticmethod
    def _filter(
        events: Iterable[Event],
        start_ns: int,
        end_ns: int,
        kinds: frozenset[str] | None,
        out: list[Event],
    ) -> None:
        for e in events:
            if e.start_ns <= end_ns and e.end_ns >= start_ns and (kinds is None or e.kind in kinds):
                out.append(e)

    def recent(self, limit: int = 100) -> list[Event]:
        with self._lock:
            out: list[Event] = []
            for c in reversed(self._chunks):
                out.extend(reversed(c.events))
                if len(out) >= limit:
                    break
        return out[:limit]

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._count
