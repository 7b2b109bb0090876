"""Structured logging: JSON lines when stderr is not a terminal (journald, files).

A message that repeats under load is rate-limited: when a port was flooded,
asyncio logged "Too many open files" with a traceback 386,797 times in 40 s
(177 MB of log). Each (logger, level, message template, call site) passes
BURST times per WINDOW_S; the rest are dropped and counted, and the next one
let through says how many were suppressed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

_STD = set(vars(logging.makeLogRecord({})))

WINDOW_S = 10.0
BURST = 5
_MAX_KEYS = 1024


class RepeatFilter(logging.Filter):
    def __init__(self, window_s: float = WINDOW_S, burst: int = BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.burst = burst
        self._clock = clock
        # key -> [window start, passed in window, suppressed since the last one passed]
        self._seen: dict[tuple[object, ...], list[float]] = {}
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg), record.pathname, record.lineno)
        now = self._clock()
        state = self._seen.get(key)
        if state is None or now - state[0] >= self.window_s:
            suppressed = int(state[2]) if state else 0
            if state is None and len(self._seen) >= _MAX_KEYS:
                self._seen.clear()  # bounded: a flood of distinct messages is not a repeat
            self._seen[key] = [now, 1, 0]
            if suppressed:
                record.suppressed_repeats = suppressed
            return True
        if state[1] < self.burst:
            state[1] += 1
            if state[2]:
                record.suppressed_repeats = int(state[2])
                state[2] = 0
            return True
        state[2] += 1
        self.suppressed_total += 1
        return False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, str | int | float | bool | None] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter() if use_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
