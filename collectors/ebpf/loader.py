"""Compiles and attaches the enabled programs with bcc, reads their maps and
drains the ring buffer. bcc is imported here, on load, never at module import.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable

from agent.untyped import Bpf
from collectors.ebpf.programs import Program, build_source

log = logging.getLogger("infernode.collector.ebpf")

# Kernel headers from a different release (the custom-kernel workaround) make clang
# warn about things irrelevant to tracepoint-only programs.
CFLAGS = ["-Wno-macro-redefined", "-Wno-unused-function", "-Wno-duplicate-decl-specifier"]


class LoadError(Exception):
    pass


class BpfModule:
    """One bcc BPF() object holding every enabled program."""

    def __init__(self, programs: list[Program], defines: dict[str, int | str]) -> None:
        self.programs = programs
        self.defines = defines
        self.bpf: Bpf = None
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()  # map reads vs. close

    def load(self) -> None:
        """Compile and attach; TRACEPOINT_PROBE functions attach themselves on load."""
        from bcc import BPF

        try:
            self.bpf = BPF(text=build_source(self.programs, self.defines).encode(), cflags=CFLAGS)
        except Exception as e:  # bcc raises plain Exception for compile and attach errors
            raise LoadError(str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__) from e

    def table(self, name: str) -> Bpf:
        return self.bpf.get_table(name.encode())

    def start_reader(self, on_record: Callable[[bytes], None], poll_ms: int = 200) -> None:
        def callback(_ctx: Bpf, data: Bpf, size: int) -> int:
            try:
                on_record(ctypes.string_at(data, size))
            except Exception:  # one bad record must not stop the reader
                log.exception("ebpf: dropping an undecodable ring buffer record")
            return 0

        self._callback = callback  # bcc keeps only a weak reference to it
        self.bpf[b"events"].open_ring_buffer(callback)

        def run() -> None:
            while not self._stop.is_set():
                self.bpf.ring_buffer_poll(poll_ms)

        self._reader = threading.Thread(target=run, name="ebpf-ringbuf", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=2)
        with self._lock:
            if self.bpf is not None:
                self.bpf.cleanup()
                self.bpf = None


def array_values(table: Bpf) -> list[int]:
    """All values of a BPF_ARRAY, index order."""
    return [v.value for v in table.values()]


def percpu_array_values(table: Bpf) -> list[list[int]]:
    """[index][cpu] values of a BPF_PERCPU_ARRAY."""
    return [[int(x) for x in v] for v in table.values()]


def percpu_sums(table: Bpf) -> list[int]:
    """Per-index totals over CPUs of a BPF_PERCPU_ARRAY."""
    return [sum(int(x) for x in v) for v in table.values()]


def hash_items(table: Bpf) -> list[tuple[Bpf, int]]:
    return [(k, v.value) for k, v in table.items()]
