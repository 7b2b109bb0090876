"""Throttle and clock-drop windows from successive polls: a pure state machine.

Each poll gives the clock-event reason bits and the SM clock. A slowdown reason
that turns on opens a window; when it turns off the window becomes a
`gpu_throttle` event [start, end]. Edges are known to poll resolution: a window
starts at the first poll that saw the reason and ends at the first that did not.

In-progress windows. The EventStore has no update, and the correlation reads
events that overlap a request. So a long window is written in segments: every
`segment_s` while it stays open, the part so far is added as its own event
(attribute state="ongoing", window_start_ns = when the whole window began) and
a new segment starts; the last segment is added when the window ends
(state="ended"). Segments never overlap, the store holds each moment once, and
the correlation learns of an ongoing throttle at most `segment_s` late.
`open_events(now)` returns the unwritten tail of every open window (ending at
now, state="open") for a caller that needs the present exactly; those are not
in the store.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from agent.events import Event
from collectors.gpu import fields as F


@dataclass
class _Window:
    kind: str
    attrs: dict[str, str | int | float]
    start_ns: int
    seg_start_ns: int
    magnitude_hz: float = 0.0  # clock drops only

    def segment(self, subject: str, end_ns: int, state: str) -> Event:
        if self.kind == "gpu_throttle":
            magnitude = (end_ns - self.seg_start_ns) / 1e9
        else:
            magnitude = self.magnitude_hz
        attrs = {**self.attrs, "window_start_ns": self.start_ns, "state": state}
        return Event(self.seg_start_ns, end_ns, self.kind, subject, magnitude, attrs)


@dataclass
class ThrottleTracker:
    subject: str  # "gpu:<uuid>"
    segment_s: float = 5.0
    # A drop is the SM clock falling this fraction below its recent (busy) level.
    drop_ratio: float = 0.10
    level_window_s: float = 10.0
    _open: dict[str, _Window] = field(default_factory=dict)
    _recent: deque[tuple[int, float]] = field(default_factory=deque)
    _drop: _Window | None = None
    _drop_level: float = 0.0

    def update(self, t_ns: int, reasons_mask: int | None, sm_hz: float | None) -> list[Event]:
        out: list[Event] = []
        if reasons_mask is not None:
            active = F.active_reasons(reasons_mask) & F.SLOWDOWN_REASONS
            for reason in sorted(active - self._open.keys()):
                self._open[reason] = _Window("gpu_throttle", {"reason": reason}, t_ns, t_ns)
            for reason in sorted(self._open.keys() - active):
                out.append(self._open.pop(reason).segment(self.subject, t_ns, "ended"))
        idle = bool(reasons_mask is not None and reasons_mask & F.GPU_IDLE)
        if sm_hz is not None:
            out.extend(self._clock(t_ns, sm_hz, idle))
        out.extend(self._segments(t_ns))
        return out

    def _clock(self, t_ns: int, hz: float, idle: bool) -> list[Event]:
        out: list[Event] = []
        horizon = t_ns - int(self.level_window_s * 1e9)
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        if self._drop is not None:
            if idle or hz >= self._drop_level * (1 - self.drop_ratio):
                out.append(self._drop.segment(self.subject, t_ns, "ended"))
                self._drop = None
            else:
                to_hz = min(float(self._drop.attrs["to_hz"]), hz)
                self._drop.attrs["to_hz"] = to_hz
                self._drop.magnitude_hz = self._drop_level - to_hz
            return out
        if idle:
            return out  # an idle GPU's clock falls by design; not a slowdown
        level = max((v for _, v in self._recent), default=None)
        if level is not None and hz < level * (1 - self.drop_ratio):
            self._drop_level = level
            self._drop = _Window("gpu_clock_drop", {"from_hz": level, "to_hz": hz}, t_ns, t_ns, level - hz)
        else:
            self._recent.append((t_ns, hz))
        return out

    def _segments(self, t_ns: int) -> list[Event]:
        out = []
        seg_ns = int(self.segment_s * 1e9)
        windows = list(self._open.values()) + ([self._drop] if self._drop else [])
        for w in windows:
            if t_ns - w.seg_start_ns >= seg_ns:
                out.append(w.segment(self.subject, t_ns, "ongoing"))
                w.seg_start_ns = t_ns
        return out

    def open_events(self, now_ns: int) -> list[Event]:
        windows = list(self._open.values()) + ([self._drop] if self._drop else [])
        return [w.segment(self.subject, max(now_ns, w.seg_start_ns), "open") for w in windows]

    def close_all(self, t_ns: int) -> list[Event]:
        """End every open window (the GPU was lost, or the agent stops)."""
        out = [w.segment(self.subject, t_ns, "ended") for w in self._open.values()]
        if self._drop is not None:
            out.append(self._drop.segment(self.subject, t_ns, "ended"))
        self._open.clear()
        self._drop = None
        self._recent.clear()
        return out
