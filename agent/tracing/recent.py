"""The requests the agent saw recently, for `explain` and `slow`; bounded."""

from __future__ import annotations

import threading
from collections import OrderedDict

from agent.tracing.correlate import Explanation


class RecentRequests:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], Explanation] = OrderedDict()
        self._by_trace: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()
        self.forgotten_total = 0

    def add(self, ex: Explanation) -> None:
        key = (ex.request.trace_id, ex.request.span_id)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self._items[key] = ex
                return
            self._items[key] = ex
            self._by_trace.setdefault(key[0], []).append(key)
            while len(self._items) > self.capacity:
                old, _ = self._items.popitem(last=False)
                keys = self._by_trace.get(old[0], [])
                if old in keys:
                    keys.remove(old)
                if not keys:
                    self._by_trace.pop(old[0], None)
                self.forgotten_total += 1

    def by_trace(self, trace_id: str) -> list[Explanation]:
        with self._lock:
            return [self._items[k] for k in self._by_trace.get(trace_id.lower(), ())]

    def slow(self, since_ns: int, top: int) -> tuple[list[Explanation], int]:
        """The `top` slowest requests flagged slow since `since_ns` (by e2e), and how
        many requests arrived in that window."""
        with self._lock:
            window = [ex for ex in self._items.values() if ex.request.start_ns >= since_ns]
        flagged = [ex for ex in window if ex.is_slow]
        flagged.sort(key=lambda ex: ex.request.e2e, reverse=True)
        return flagged[:top], len(window)

    def __len__(self) -> int:
        return len(self._items)
