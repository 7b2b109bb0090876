"""The requests the agent saw recently, for `explain` and `slow`; bounded.

Each is kept small: the span's numbers, its scope, the events that concerned it
(references to events the store holds anyway) and its slow verdict. The full
explanation is worked out again from those when asked for (it is pure and
deterministic), because ten thousand kept explanations with their groups and
wording would cost more in garbage-collector walks than all of the correlation.
Keeping the events themselves, not a store query, means the answer does not change
when the store has evicted them since.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.events import Event
from agent.tracing.correlate import explain
from agent.tracing.delivery import ClientDelay
from agent.tracing.engine_causes import EngineSettings
from agent.tracing.engine_load import LoadView
from agent.tracing.ranking import RequestScope
from agent.tracing.spans import RequestSpan
from agent.tracing.wording import Explanation


@dataclass(frozen=True, slots=True)
class Seen:
    request: RequestSpan
    scope: RequestScope
    events: Sequence[Event]
    slow: tuple[dict[str, object], ...]
    min_cause_s: float
    min_share: float
    load: Callable[[], LoadView | None] | None = None
    engine: EngineSettings | None = None
    client: Callable[[], ClientDelay | None] | None = None

    @classmethod
    def of(cls, ex: Explanation) -> Seen:
        scope = ex.scope or RequestScope(worker=ex.worker)
        return cls(ex.request, scope, ex.events, tuple(ex.slow), ex.min_cause_s, ex.min_share, ex.load, ex.engine,
                   ex.client)

    def explanation(self) -> Explanation:
        """Worked out again, the engine causes against the worker's load as it is now,
        the client's delay against the retransmits seen by now."""
        return explain(self.request, self.scope, self.events, list(self.slow), self.min_cause_s, self.min_share,
                       self.load, self.engine, self.client)


class RecentRequests:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], Seen] = OrderedDict()
        self._by_trace: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def add(self, ex: Explanation) -> None:
        seen = Seen.of(ex)
        key = (ex.request.trace_id, ex.request.span_id)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self._items[key] = seen
                return
            self._items[key] = seen
            self._by_trace.setdefault(key[0], []).append(key)
            while len(self._items) > self.capacity:
                old, _ = self._items.popitem(last=False)
                keys = self._by_trace.get(old[0], [])
                if old in keys:
                    keys.remove(old)
                if not keys:
                    self._by_trace.pop(old[0], None)

    def by_trace(self, trace_id: str) -> list[Explanation]:
        with self._lock:
            seen = [self._items[k] for k in self._by_trace.get(trace_id.lower(), ())]
        return [s.explanation() for s in seen]

    def slow(self, since_ns: int, top: int) -> tuple[list[Explanation], int]:
        """The `top` slowest requests flagged slow since `since_ns` (by e2e), and how
        many requests arrived in that window."""
        with self._lock:
            window = [s for s in self._items.values() if s.request.start_ns >= since_ns]
        flagged = [s for s in window if s.slow]
        flagged.sort(key=lambda s: s.request.e2e, reverse=True)
        return [s.explanation() for s in flagged[:top]], len(window)

    def __len__(self) -> int:
        return len(self._items)
