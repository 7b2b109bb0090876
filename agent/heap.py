"""Give freed heap back to the kernel after a large refused payload.

A refused export of several MiB is freed at once, but glibc keeps the pages in its
arenas (gRPC's core threads each have their own), so without a trim RSS stays at
its high-water mark: 40 refused 10 MB gRPC exports left an agent 200 MB larger
after 30 s idle. `malloc_trim(0)` hands back free pages from every arena; it costs
well under a millisecond, and requests are coalesced so that a flood of refusals
trims a few times a second at most. Where the C library has no malloc_trim
(musl), this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

# A trim runs this long after the last request of a burst, and at least every
# MAX_DELAY_S during a sustained one.
COALESCE_S = 0.2
MAX_DELAY_S = 1.0


def _load_trim() -> Callable[[], None] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        fn = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: fn(0)


class HeapTrimmer:
    """`request()` from the event loop, after letting a large buffer go."""

    def __init__(self, trim: Callable[[], None] | None = None) -> None:
        self._trim = trim
        self._loaded = trim is not None
        self._pending: asyncio.TimerHandle | None = None
        self._first = 0.0
        self.trims = 0

    def request(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        now = loop.time()
        if self._pending is not None:
            if now - self._first >= MAX_DELAY_S:
                return
            self._pending.cancel()
        else:
            self._first = now
        self._pending = loop.call_later(COALESCE_S, self._run)

    def _run(self) -> None:
        self._pending = None
        if not self._loaded:
            self._trim, self._loaded = _load_trim(), True
        if self._trim is not None:
            self._trim()
            self.trims += 1

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
