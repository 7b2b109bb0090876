"""Keeping the kernel's own housekeeping off the inference CPUs at run time, as tuned's
cpu-partitioning does, without a reboot: the unbound and writeback workqueues' CPU
masks, and the default CPU affinity systemd gives every service it starts.
(The sysctls of that family, kernel.timer_migration, vm.stat_interval,
kernel.nmi_watchdog and kernel.hung_task_timeout_secs, are in sysctl.py.)

`housekeeping` resolves to the housekeeping CPUs (`tuning.housekeeping_cpus`,
default the first core of each NUMA node); an explicit CPU list is taken as given.
"""

from __future__ import annotations

from pathlib import Path

from agent.cpulist import format_cpulist, parse_cpulist
from tuning.desired import Desired, parse_desired
from tuning.tunable import (
    Tunable,
    TunableError,
    TuneContext,
    Unsupported,
    read_file,
    restore_file,
    snapshot_file,
    symbol_or_cpulist,
    write_file,
)

_housekeeping_or_cpulist = symbol_or_cpulist("housekeeping")


def housekeeping_resolved(ctx: TuneContext, desired: Desired) -> Desired:
    """`housekeeping` as this host's housekeeping CPUs; a CPU list in canonical form."""
    cpus = ctx.housekeeping if desired.text == "housekeeping" else parse_cpulist(desired.text)
    return parse_desired(format_cpulist(cpus))


def mask_to_cpus(text: str) -> frozenset[int]:
    """The kernel's cpumask text ("00000000,0000000f": 32-bit hex words, most
    significant first) -> CPUs. Raises ValueError on anything else."""
    value = int("".join(text.strip().split(",")), 16)
    return frozenset(i for i in range(value.bit_length()) if value >> i & 1)


def cpus_to_mask(cpus: frozenset[int]) -> str:
    """CPUs -> the kernel's cpumask text, in 32-bit words (bitmap_parse refuses longer ones)."""
    value = sum(1 << c for c in cpus)
    words = []
    while True:
        words.append(f"{value & 0xFFFFFFFF:08x}")
        value >>= 32
        if not value:
            break
    return ",".join(reversed(words))


class _CpuMaskFile(Tunable):
    family = "isolation"
    checker = staticmethod(_housekeeping_or_cpulist)
    relpath: tuple[str, ...] = ()

    def targets(self) -> list[str]:
        return ["system"]

    def _path(self) -> Path:
        return self.ctx.paths.sys(*self.relpath)

    def read(self, target: str) -> str:
        text = read_file(self._path())
        try:
            return format_cpulist(mask_to_cpus(text))
        except ValueError:
            raise Unsupported(f"{self._path()} holds {text[:40]!r}, not a CPU mask") from None

    def snapshot(self, target: str) -> str:
        return read_file(self._path())

    def restore(self, target: str, original: str) -> None:
        write_file(self._path(), original)

    def resolve(self, target: str, desired: Desired) -> Desired:
        return housekeeping_resolved(self.ctx, desired)

    def write(self, target: str, value: str) -> None:
        cpus = parse_cpulist(value)
        if not cpus:
            raise TunableError(f"{self.name}: an empty CPU set would leave the kernel no CPU for this work")
        write_file(self._path(), cpus_to_mask(cpus))


class WorkqueueCpumask(_CpuMaskFile):
    """CPUs that run unbound kernel workqueues (`/sys/devices/virtual/workqueue/cpumask`,
    the mask every unbound workqueue's own mask is limited to).

    `housekeeping`: deferred kernel work (writeback, crypto, filesystem and driver
    work items) stays off the inference CPUs, as tuned's cpu-partitioning sets it.
    Per-CPU (bound) work items still run where they were queued."""

    name = "workqueue.cpumask"
    relpath = ("devices", "virtual", "workqueue", "cpumask")


class WorkqueueWritebackCpumask(_CpuMaskFile):
    """CPUs that run the page-cache writeback workqueue
    (`/sys/bus/workqueue/devices/writeback/cpumask`).

    `housekeeping`: flushing dirty pages (logs, checkpoints) never takes an
    inference CPU, as tuned's cpu-partitioning sets it."""

    name = "workqueue.writeback_cpumask"
    relpath = ("bus", "workqueue", "devices", "writeback", "cpumask")


class SystemdCpuAffinity(Tunable):
    """The CPUs systemd runs itself and every service it starts on (`CPUAffinity=` in
    `/etc/systemd/system.conf.d/50-infernode-housekeeping.conf`, applied with
    `systemctl daemon-reload`, which in systemd 252 re-applies it to PID 1 (a
    daemon-reexec does not); read back from PID 1's `Cpus_allowed_list`).

    `housekeeping`: sshd, journald, cron jobs, the agent itself and every other
    service started after the change stay off the inference CPUs, as tuned's
    cpu-partitioning `[systemd] cpu_affinity` does. A unit's own `CPUAffinity=`
    (the worker's pinning to its GPUs' CPUs) still wins, and services already
    running keep their CPUs until restarted. Rollback restores the drop-in byte for
    byte and PID 1's own affinity (systemd does not reset it by itself)."""

    name = "systemd.cpu_affinity"
    family = "isolation"
    persistent = True  # its drop-in outlives a reboot
    checker = staticmethod(_housekeeping_or_cpulist)
    DROPIN = ("systemd", "system.conf.d", "50-infernode-housekeeping.conf")

    def _dropin(self) -> Path:
        return self.ctx.paths.etc(*self.DROPIN)

    def targets(self) -> list[str]:
        return ["manager"]

    def read(self, target: str) -> str:
        if not self.ctx.paths.is_real_root():
            # An image (--root) runs no systemd: what it will boot with is its drop-in.
            return self._configured()
        comm = read_file(self.ctx.paths.proc("1", "comm"))
        if comm != "systemd":
            raise Unsupported(f"PID 1 is {comm!r}, not systemd")
        status = read_file(self.ctx.paths.proc("1", "status"))
        for line in status.splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return format_cpulist(parse_cpulist(line.split(":", 1)[1].strip()))
        raise Unsupported("/proc/1/status has no Cpus_allowed_list")

    def _configured(self) -> str:
        path = self._dropin()
        text = path.read_text() if path.exists() else ""
        for line in text.splitlines():
            if line.strip().startswith("CPUAffinity="):
                words = line.split("=", 1)[1].split()
                return format_cpulist(parse_cpulist(",".join(words)))
        return format_cpulist(self.ctx.topology.all_cpus)  # no CPUAffinity=: every CPU

    def resolve(self, target: str, desired: Desired) -> Desired:
        return housekeeping_resolved(self.ctx, desired)

    def snapshot(self, target: str) -> str:
        # PID 1's affinity too: removing the drop-in does not give it back its CPUs.
        return f"{self.read(target)}\n{snapshot_file(self._dropin())}"

    def restore(self, target: str, original: str) -> None:
        cpus, _, text = original.partition("\n")
        self._set(cpus)  # PID 1 back on its CPUs, then the file as it was
        restore_file(self._dropin(), text)
        self._reload()

    def write(self, target: str, value: str) -> None:
        if not parse_cpulist(value):
            raise TunableError(f"{self.name}: an empty CPU set would leave services no CPU")
        self._set(value)

    def _set(self, cpulist: str) -> None:
        path = self._dropin()
        path.parent.mkdir(parents=True, exist_ok=True)
        cpus = " ".join(str(c) for c in sorted(parse_cpulist(cpulist)))
        path.write_text("# Written by infernode (tuning: systemd.cpu_affinity); `infernode tune rollback` "
                        f"removes it.\n[Manager]\nCPUAffinity={cpus}\n")
        self._reload()

    def _reload(self) -> None:
        _systemctl(self.ctx, "daemon-reload")


class SliceAllowedCpus(Tunable):
    """CPUs the processes of system.slice and user.slice may run on (`AllowedCPUs=` in
    `/etc/systemd/system/<slice>.d/50-infernode-allowed-cpus.conf`; cgroup v2 cpuset).

    `housekeeping`: every service and login session, those already running too, is
    confined to the housekeeping CPUs by the kernel's cpuset, which a process
    cannot widen with sched_setaffinity. Needs the cpuset controller in the unified
    hierarchy (a pure cgroup v2 host); on hybrid and v1 hosts, where cpuset is a v1
    controller systemd does not drive, it is unsupported and
    `processes.cpu_affinity` with `systemd.cpu_affinity` do the work. Applied at once
    with `systemctl set-property --runtime` (and kept across reboots by the drop-in);
    read back from the slice's cpuset.cpus. Rollback restores the drop-in byte for
    byte and the slice's CPUs."""

    name = "systemd.slice_allowed_cpus"
    family = "isolation"
    persistent = True  # the drop-in outlives a reboot
    checker = staticmethod(_housekeeping_or_cpulist)
    SLICES = ("system.slice", "user.slice")

    def _dropin(self, target: str) -> Path:
        return self.ctx.paths.etc("systemd", "system", f"{target}.d", "50-infernode-allowed-cpus.conf")

    def targets(self) -> list[str]:
        return list(self.SLICES)

    def resolve(self, target: str, desired: Desired) -> Desired:
        return housekeeping_resolved(self.ctx, desired)

    def read(self, target: str) -> str:
        everywhere = format_cpulist(self.ctx.topology.all_cpus)
        if not self.ctx.paths.is_real_root():
            return self._configured(target) or everywhere  # an image: what it will boot with
        controllers = self.ctx.paths.cgroup("cgroup.controllers")
        if not controllers.exists():
            raise Unsupported("/sys/fs/cgroup is not a cgroup v2 (unified) mount: cpuset is a v1 controller "
                              "here; processes.cpu_affinity and systemd.cpu_affinity keep the CPUs free instead")
        if "cpuset" not in read_file(controllers).split():
            raise Unsupported("the cpuset controller is not available in the unified hierarchy")
        try:
            text = read_file(self.ctx.paths.cgroup(target, "cpuset.cpus")).strip()
        except Unsupported:
            return everywhere  # cpuset not enabled for the slice: no limit
        return format_cpulist(parse_cpulist(text)) if text else everywhere

    def _configured(self, target: str) -> str | None:
        path = self._dropin(target)
        if not path.exists():
            return None
        for line in path.read_text().splitlines():
            if line.strip().startswith("AllowedCPUs="):
                value = line.split("=", 1)[1].strip()
                return format_cpulist(parse_cpulist(value.replace(" ", ","))) if value else None
        return None

    def snapshot(self, target: str) -> str:
        return snapshot_file(self._dropin(target))

    def write(self, target: str, value: str) -> None:
        if not parse_cpulist(value):
            raise TunableError(f"{self.name}: an empty CPU set would leave {target} no CPU")
        path = self._dropin(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Written by infernode (tuning: systemd.slice_allowed_cpus); `infernode tune rollback` "
                        f"removes it.\n[Slice]\nAllowedCPUs={value}\n")
        self._apply(target, value)

    def restore(self, target: str, original: str) -> None:
        restore_file(self._dropin(target), original)
        self._apply(target, self._configured(target) or "")

    def _apply(self, target: str, value: str) -> None:
        _systemctl(self.ctx, "daemon-reload")
        _systemctl(self.ctx, "set-property", "--runtime", target, f"AllowedCPUs={value}")


def _systemctl(ctx: TuneContext, *args: str) -> None:
    """systemctl on the running system; nothing in an image (--root), which runs no systemd."""
    if not ctx.paths.is_real_root():
        return
    res = ctx.run(["systemctl", *args])
    if res.returncode != 0:
        raise TunableError(f"systemctl {' '.join(args)} failed: {(res.stderr or res.stdout).strip()[:200]}")
