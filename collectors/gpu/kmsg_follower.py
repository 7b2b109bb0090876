"""Follows /dev/kmsg from the agent's start and hands each NVIDIA XID/SXid line on.

Reading starts at the end of the log: lines from before the agent started were
counted by the agent that ran then (a counter restarts with the process anyway).
A reader too slow for the ring buffer gets EPIPE; the records it missed are
counted (`lost`), and reading goes on from the oldest record still there.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path

from collectors.gpu.kmsg import SxidLine, XidLine, parse_line, parse_record

log = logging.getLogger("infernode.collector.gpu")

OnLine = Callable[[XidLine | SxidLine], None]
_READ_SIZE = 8192  # the kernel's record limit is below this (CONSOLE_EXT_LOG_MAX)


class KmsgFollower:
    def __init__(self, path: Path, on_line: OnLine, poll_ms: int = 500) -> None:
        self.path = path
        self.on_line = on_line
        self.poll_ms = poll_ms
        self.lost = 0  # records overwritten before they were read (gaps in the sequence numbers)
        self.lines = 0  # NVIDIA lines handed on
        self.error: str | None = None
        self._fd: int | None = None
        self._last_seq: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(fd, 0, os.SEEK_END)
        except OSError as e:
            self.error = f"cannot read {self.path}: {e.strerror}"
            log.info("no kernel-log XIDs: %s", self.error)
            return False
        self._fd = fd
        self._thread = threading.Thread(target=self._run, name="gpu-kmsg", daemon=True)
        self._thread.start()
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_ms / 1000 + 1)
        if self._fd is not None and not self.running:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(self.poll_ms):
                continue
            while not self._stop.is_set():
                try:
                    raw = os.read(self._fd, _READ_SIZE)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == errno.EPIPE:
                        continue  # the next record read shows how many were missed
                    self.error = f"reading {self.path}: {e.strerror}"
                    log.warning("kernel-log XIDs stopped: %s", self.error)
                    return
                self._handle(raw)

    def _handle(self, raw: bytes) -> None:
        rec = parse_record(raw)
        if rec is None:
            return
        if self._last_seq is not None and rec.seq > self._last_seq + 1:
            self.lost += rec.seq - self._last_seq - 1
        self._last_seq = rec.seq
        if "NVRM: Xid" not in rec.message and "SXid" not in rec.message:
            return
        line = parse_line(rec.message)
        if line is None:
            return
        try:
            self.on_line(line)
        except Exception:  # noqa: BLE001 - one bad line never stops the follower
            log.exception("handling kernel-log line %r failed", rec.message)
        finally:
            self.lines += 1  # after the line was handled: a reader of `lines` sees its effects
