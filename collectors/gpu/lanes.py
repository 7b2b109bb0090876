"""One reader thread per GPU ("lane"), so a call that hangs inside NVML stalls only
its own GPU.

A GSP RPC timeout (XID 119/120) can hold an NVML call for seconds or for good.
With one poll thread for all GPUs, that one call left every GPU unread and every
GPU stale (`infernode_gpu_up 0` on all eight). Each GPU now has a lane: the poll
pass hands each idle lane its read and waits a bounded time; a lane still inside
an NVML call is skipped (its GPU goes stale alone) and reported stuck. NVML is
documented thread-safe, so reading eight GPUs at once is allowed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("infernode.collector.gpu")


class DeviceLane:
    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._job: Callable[[], None] | None = None
        self._busy_since: float | None = None  # monotonic, while a job runs
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue `job` unless the lane is still busy with the last one (or stopped)."""
        with self._cond:
            if self._stopped or self._job is not None or self._busy_since is not None:
                return False
            self._job = job
            self._cond.notify_all()
            return True

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(self._idle, timeout=max(0.0, timeout))

    def _idle(self) -> bool:
        return self._job is None and self._busy_since is None

    def busy_for(self, now: float) -> float:
        """Seconds the current job has run (0 when idle)."""
        since = self._busy_since
        return 0.0 if since is None else max(0.0, now - since)

    @property
    def busy(self) -> bool:
        with self._cond:
            return not self._idle()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopped or self._job is not None)
                if self._stopped:
                    return
                job, self._job = self._job, None
                self._busy_since = time.monotonic()
            try:
                if job is not None:
                    job()
            except Exception:  # noqa: BLE001 - a lane outlives any one read
                log.exception("GPU read failed")
            finally:
                with self._cond:
                    self._busy_since = None
                    self._cond.notify_all()
