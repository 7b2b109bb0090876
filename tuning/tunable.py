"""The Tunable interface (DESIGN.md) and the context tunables run in.

A tunable names one kind of knob ("cpu.governor") and enumerates its targets on
this host ("cpu3"). `read(target)` gives the normalised current value or raises
Unsupported; `write(target, value)` is the only mutation. `snapshot`/`restore`
default to read/write; knobs whose normalised value cannot be written back as it
was read (a config file with other lines) override them, so rollback restores
byte-for-byte.
"""

from __future__ import annotations

import errno
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Protocol

from agent.absent import Absent
from agent.hostfs import read_text
from agent.paths import Paths
from agent.topology import HostTopology, read_host_topology
from tuning.desired import Desired
from tuning.settings import TuningSettings
from tuning.topology import housekeeping_cpus, inference_cpus


class Unsupported(Absent):
    """This host has no such knob (no cpufreq in a VM, no rings on veth)."""


class TunableError(Exception):
    """A write the kernel refused, with what to do instead."""


# What the kernel answers a write to a kernel-managed interrupt's affinity: EPERM on
# the 6.18 kernel the tests run on; EIO where write_irq_affinity() in
# kernel/irq/proc.c returns -EIO for it (older kernels). Which version changed it
# is not recorded here.
MANAGED_IRQ_ERRNOS = (errno.EPERM, errno.EIO)


class Refused(TunableError):
    """This target is not ours to set and never will be (a kernel-managed interrupt):
    the apply goes on without it and records it, plan and verify show it as
    refused, not as drift, until the next rollback or reboot."""


class Runner(Protocol):
    def __call__(self, argv: list[str], timeout: float = ...) -> subprocess.CompletedProcess: ...


def run_command(argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


class LatencyCap(Protocol):
    """Holds a C-state exit latency cap for as long as the daemon runs
    (tuning.tunables.cpu.LatencyHolder)."""

    def hold(self, microseconds: int) -> None: ...
    def release(self) -> None: ...


@dataclass
class TuneContext:
    paths: Paths
    settings: TuningSettings
    run: Runner = run_command
    # Set by the daemon: holds /dev/cpu_dma_latency open while it runs.
    holder: LatencyCap | None = None
    _topology: HostTopology | None = field(default=None, repr=False)
    # Work that several writes share and that runs once after the last of them
    # (update-grub after the boot parameters), keyed so it is queued once.
    _finishers: dict[str, Callable[[], None]] = field(default_factory=dict, repr=False)

    def after_writes(self, key: str, action: Callable[[], None]) -> None:
        self._finishers[key] = action

    def finish(self) -> None:
        """Run the queued work once each; raises the first failure (the rest still run)."""
        queued, self._finishers = self._finishers, {}
        errors = []
        for action in queued.values():
            try:
                action()
            except (TunableError, OSError) as e:
                errors.append(str(e))
        if errors:
            raise TunableError("; ".join(errors))
    # Objects the knobs of one plan and the apply after it share (the boot loader), by name.
    shared: dict[str, object] = field(default_factory=dict, repr=False)

    @cached_property
    def topology(self) -> HostTopology:
        return self._topology or read_host_topology(self.paths)

    @cached_property
    def housekeeping(self) -> frozenset[int]:
        return housekeeping_cpus(self.topology, self.settings)

    @cached_property
    def inference(self) -> frozenset[int]:
        return inference_cpus(self.topology, self.settings)


class Tunable(ABC):
    name: ClassVar[str]
    family: ClassVar[str]
    # Held by the daemon process rather than written to the host: no original to save.
    process_held: ClassVar[bool] = False
    # Written to a file that outlives a reboot: its original is kept under /var/lib too.
    persistent: ClassVar[bool] = False

    def __init__(self, ctx: TuneContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def targets(self) -> list[str]:
        """The instances of this knob on the host ("cpu0", "eth0", "node1")."""

    @abstractmethod
    def read(self, target: str) -> str:
        """Normalised current value; raises Unsupported."""

    @abstractmethod
    def write(self, target: str, value: str) -> None:
        """Set the value; raises TunableError or OSError when refused."""

    # Pure check of a profile value: None when it makes sense, else what was expected.
    checker: ClassVar[staticmethod[[Desired], str | None] | None] = None

    @classmethod
    def validate(cls, desired: Desired) -> str | None:
        return cls.checker(desired) if cls.checker is not None else None

    def resolve(self, target: str, desired: Desired) -> Desired:
        """Turn symbolic values ("max", "local") into concrete ones for a target."""
        return desired

    def booted(self, target: str) -> str | None:
        """For a knob that takes effect at the next boot: the value the running kernel
        was booted with ("" unset), or None where nothing was booted (an image).
        Runtime knobs do not override it."""
        raise NotImplementedError

    takes_effect_at_boot: ClassVar[bool] = False

    def snapshot(self, target: str) -> str:
        return self.read(target)

    def restore(self, target: str, original: str) -> None:
        self.write(target, original)


def read_file(path: Path) -> str:
    """A sysfs/procfs value without its trailing newline; Unsupported when absent."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise Unsupported(f"{path} does not exist") from None
    except PermissionError as e:
        raise Unsupported(f"{path}: {e.strerror}") from None
    return text[:-1] if text.endswith("\n") else text


# A file that did not exist, as a snapshot records it (kept in the state file: never change it).
ABSENT = "\0absent"


def snapshot_file(path: Path) -> str:
    """A configuration file's text for `restore_file`, ABSENT when there is none."""
    return path.read_text() if path.exists() else ABSENT


def restore_file(path: Path, original: str) -> None:
    """Put a configuration file back as `snapshot_file` found it: its text byte for
    byte, or no file."""
    if original == ABSENT:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(original)


def write_file(path: Path, value: str) -> None:
    """Write like `echo value > path`: never creates the file (a missing knob is
    an error, not a new file) and surfaces the kernel's errno."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, (value + "\n").encode())
    finally:
        os.close(fd)


def selected(text: str) -> str:
    """The bracketed choice of a selector file ("always [madvise] never")."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.strip()


def int_validator(lo: int | None = None, hi: int | None = None) -> Callable[[Desired], str | None]:
    def check(d: Desired) -> str | None:
        values = [d.bound] if d.kind in ("atleast", "atmost") else list(d.options)
        for v in values:
            try:
                n = int(v)
            except (TypeError, ValueError):
                return f"an integer, >=N or <=N (got {d.text!r})"
            if (lo is not None and n < lo) or (hi is not None and n > hi):
                return f"an integer in [{lo}, {hi}] (got {d.text!r})"
        if d.kind == "fields":
            return f"a single integer (got {d.text!r})"
        return None

    return check


def symbol_or_cpulist(symbol: str) -> Callable[[Desired], str | None]:
    """A checker for `symbol` ("local", "housekeeping") or a non-empty CPU list."""
    from agent.cpulist import CpuListError, parse_cpulist

    def check(d: Desired) -> str | None:
        if d.kind == "exact" and d.text == symbol:
            return None
        try:
            if d.kind == "exact" and parse_cpulist(d.text):
                return None
        except CpuListError:
            pass
        return f"'{symbol}' or a CPU list like 0-3,8 (got {d.text!r})"

    return check


def choice_validator(choices: tuple[str, ...]) -> Callable[[Desired], str | None]:
    def check(d: Desired) -> str | None:
        if d.kind not in ("exact", "anyof") or any(o not in choices for o in d.options):
            return f"one of {'|'.join(choices)} (or several joined by |) (got {d.text!r})"
        return None

    return check
