"""One XID seen by two sources (NVML's event set and the kernel log) is counted once.

Neither source carries a timestamp both share (NVML event data has none; a kmsg
record has the kernel's monotonic clock), so the match is by arrival: the same
XID on the same GPU from the other source within `window` seconds is the same
error. Two errors of one XID on one GPU inside the window from the same source
are two errors; the cost of the rule is that an XID which NVML and the log each
report once, `window` apart, counts twice.
"""

from __future__ import annotations

from collections import deque

Key = tuple[str, int]  # (GPU uuid, XID)


class XidDedup:
    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._pending: dict[Key, deque[tuple[float, str]]] = {}

    def is_duplicate(self, key: Key, source: str, t: float) -> bool:
        """Record an arrival; True when it is another source's report of one already counted."""
        q = self._pending.setdefault(key, deque())
        while q and t - q[0][0] > self.window:
            q.popleft()
        for i, (_, src) in enumerate(q):
            if src != source:
                del q[i]
                return True
        q.append((t, source))
        return False

    def prune(self, t: float) -> None:
        for key in [k for k, q in self._pending.items() if not q or t - q[-1][0] > self.window]:
            del self._pending[key]
