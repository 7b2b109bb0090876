"""Moving the processes already running off the inference CPUs, as tuned's
scheduler plugin does for cpu-partitioning's isolated cores (`isolated_cores`).

systemd.cpu_affinity places what systemd starts from now on; this places what runs
now: every user-space thread that may run on an inference CPU and also elsewhere
gets its affinity narrowed to the housekeeping CPUs (the part of its affinity that
is housekeeping, else all of them). Left alone, as tuned leaves its blacklist:
- kernel threads and threads the kernel does not let move (PF_KTHREAD,
  PF_NO_SETAFFINITY in /proc/PID/task/TID/stat);
- everything in inference.slice (the workers the agent supervises), and any
  process whose command line names vLLM (an engine started by hand outside the
  slice, unpinned: moving it would put the node's inference on the housekeeping
  CPUs);
- threads confined to inference CPUs already: pinned there on purpose (a worker
  started by hand with taskset or numactl), which is where they should run.

Rollback gives each moved thread its affinity back, if it still exists and is the
same thread (its start time matches). Threads that a moved process created after
the apply inherited the narrow affinity and keep it until they exit.
"""

from __future__ import annotations

import json
import os

from agent.cgroups import parse_proc_cgroup, parse_tgid
from agent.cpulist import format_cpulist, parse_cpulist
from tuning.desired import Desired
from tuning.tunable import Tunable, TunableError, TuneContext, Unsupported, read_file, symbol_or_cpulist
from tuning.tunables.isolation import housekeeping_resolved

PF_KTHREAD = 0x00200000
PF_NO_SETAFFINITY = 0x04000000
WORKER_SLICE = "/inference.slice"
ENGINE_MARK = b"vllm"


def parse_stat(text: str) -> tuple[int, int]:
    """/proc/PID/task/TID/stat -> (flags, start time in ticks). The command name (field
    2) may hold spaces and parentheses: fields are counted after its last ')'."""
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): flags is field 9, starttime field 22.
    if len(rest) < 20:
        raise ValueError(f"a stat line with {len(rest) + 2} fields, not 22 or more")
    return int(rest[6]), int(rest[19])


class ProcessAffinity(Tunable):
    """CPUs that the threads already running outside inference.slice may use
    (tuned's `scheduler.isolated_cores`, at run time, no reboot).

    `housekeeping`: sshd, journald, cron jobs, the agent and anything else that was
    running before the profile came are moved off the inference CPUs now, where
    `systemd.cpu_affinity` only places what starts later. Kernel threads, the
    workers in inference.slice, any process whose command line names vLLM and
    threads already pinned to inference CPUs only are left where they are. Running
    system only (unsupported under `--root`)."""

    name = "processes.cpu_affinity"
    family = "isolation"
    checker = staticmethod(symbol_or_cpulist("housekeeping"))

    def __init__(self, ctx: TuneContext) -> None:
        super().__init__(ctx)
        # Threads that refused a move (they exited, or the kernel said EINVAL) in this
        # engine's apply: not counted against the read-back.
        self._refused: set[int] = set()

    def targets(self) -> list[str]:
        return ["running"]

    def resolve(self, target: str, desired: Desired) -> Desired:
        return housekeeping_resolved(self.ctx, desired)

    def _threads(self) -> dict[int, tuple[int, frozenset[int]]]:
        """Movable threads: tid -> (start time, affinity)."""
        if not self.ctx.paths.is_real_root():
            raise Unsupported("running processes exist on the running system only")
        inference = self.ctx.inference
        out: dict[int, tuple[int, frozenset[int]]] = {}
        proc = self.ctx.paths.proc()
        for pid in filter(str.isdigit, os.listdir(proc)):
            try:
                cgroup = (proc / pid / "cgroup").read_text()
                cmdline = (proc / pid / "cmdline").read_bytes()
                tids = [t for t in os.listdir(proc / pid / "task") if t.isdigit()]
            except OSError:
                continue  # exited
            if any(path.startswith(WORKER_SLICE) for path in parse_proc_cgroup(cgroup).values()):
                continue
            if ENGINE_MARK in cmdline.lower():
                continue
            for tid in tids:
                try:
                    flags, start = parse_stat((proc / pid / "task" / tid / "stat").read_text())
                    affinity = frozenset(os.sched_getaffinity(int(tid)))
                except (OSError, ValueError):
                    continue
                if flags & (PF_KTHREAD | PF_NO_SETAFFINITY) or int(tid) in self._refused:
                    continue
                if affinity & inference and not affinity <= inference:
                    out[int(tid)] = (start, affinity)
        return out

    def read(self, target: str) -> str:
        threads = self._threads()
        if not threads:
            return format_cpulist(self.ctx.housekeeping)  # nobody else may run on an inference CPU
        return format_cpulist(frozenset().union(*(aff for _, aff in threads.values())))

    def write(self, target: str, value: str) -> None:
        cpus = parse_cpulist(value)
        if not cpus:
            raise TunableError(f"{self.name}: an empty CPU set would leave these threads no CPU")
        for tid, (_, affinity) in self._threads().items():
            try:
                os.sched_setaffinity(tid, (affinity & cpus) or cpus)
            except ProcessLookupError:
                continue  # exited meanwhile
            except OSError:
                self._refused.add(tid)

    def snapshot(self, target: str) -> str:
        threads = self._threads()
        return json.dumps({str(tid): [start, format_cpulist(aff)] for tid, (start, aff) in sorted(threads.items())})

    def restore(self, target: str, original: str) -> None:
        proc = self.ctx.paths.proc()
        for tid, (start, cpus) in json.loads(original).items():
            try:
                tgid = parse_tgid(read_file(proc / tid / "status")) or int(tid)
            except Unsupported:
                continue  # the thread is gone
            try:
                _, now_start = parse_stat((proc / str(tgid) / "task" / tid / "stat").read_text())
                if now_start == start:
                    os.sched_setaffinity(int(tid), parse_cpulist(cpus))
            except (OSError, ValueError):
                continue
