"""Kernel boot parameters (tuned's [bootloader]), one tunable each.

A boot parameter has two values: what the boot loader will pass at the next boot
(`read`, from GRUB's configuration as grub-mkconfig reads it) and what the
running kernel was booted with (`booted`, from /proc/cmdline). `apply` writes the
first (tuning/bootloader.py: a GRUB drop-in, then update-grub, once per apply; or
tuning/bls.py: the options of every BLS entry and /etc/kernel/cmdline);
the second changes only at a reboot, which infernode never does. Between the two
the knob is "pending reboot": `tune plan` and `tune verify` say so, verify exits 3,
and `infernode_tuning_pending_reboot` is 1.

A parameter the site already sets itself (in /etc/default/grub or another grub.d
file) to another value is not stacked on: apply refuses and names the file to edit.
Rollback restores infernode's drop-in byte for byte (removes it when there was
none) and runs update-grub again. The record of originals is kept under
/var/lib/infernode/tuning as well as /run, so rollback still works after the
reboot the change was made for.
"""

from __future__ import annotations

from typing import ClassVar

from agent.cpulist import CpuListError, format_cpulist, parse_cpulist
from tuning.bootloader import boot_loader
from tuning.cmdline import GIB, Param, hugepages_of_size, last_value, split_cmdline
from tuning.desired import Desired, parse_desired
from tuning.tunable import (
    Tunable,
    TunableError,
    Unsupported,
    choice_validator,
    read_file,
    symbol_or_cpulist,
)

CPULIST_SYMBOL = "inference"
ISOLCPUS_FLAGS = ("domain", "managed_irq", "nohz")


def _canonical_cpulist(text: str) -> str:
    try:
        return format_cpulist(parse_cpulist(text))
    except CpuListError:
        return text


def _canonical_isolcpus(text: str) -> str:
    """`managed_irq,domain,2-7` with its flags in one order, so equal settings compare equal."""
    words = text.split(",")
    flags = sorted(w for w in words if w in ISOLCPUS_FLAGS)
    cpus = ",".join(w for w in words if w not in ISOLCPUS_FLAGS)
    return ",".join([*flags, _canonical_cpulist(cpus)])


def _isolcpus_checker(d: Desired) -> str | None:
    if d.kind == "exact" and d.text == CPULIST_SYMBOL:
        return None
    words = d.text.split(",")
    cpus = ",".join(w for w in words if w not in ISOLCPUS_FLAGS)
    try:
        if d.kind == "exact" and parse_cpulist(cpus):
            return None
    except CpuListError:
        pass
    return (f"'{CPULIST_SYMBOL}' or a CPU list with optional flags ({', '.join(ISOLCPUS_FLAGS)}) "
            f"like managed_irq,domain,2-31 (got {d.text!r})")


def _hugepages_checker(d: Desired) -> str | None:
    # A page count, or the per-node form the kernel takes since 5.10 ("0:8,1:8").
    text = d.text
    nodes = [p.split(":", 1) for p in text.split(",")] if ":" in text else None
    ok = d.kind == "exact" and (
        (nodes is None and text.isdigit() and int(text) > 0)
        or (nodes is not None and all(len(p) == 2 and p[0].isdigit() and p[1].isdigit() for p in nodes))
    )
    return None if ok else f"a number of 1 GiB pages, or per node like 0:8,1:8 (got {text!r})"


class BootParam(Tunable):
    family = "boot"
    persistent = True
    takes_effect_at_boot = True
    param: ClassVar[str] = ""

    def targets(self) -> list[str]:
        return ["cmdline"]

    # -- the parameter's own syntax (overridden where it is not `name=value`) --

    def value_of(self, params: list[Param]) -> str:
        """The normalised value in a parameter list; "" when the parameter is absent."""
        value = last_value(params, self.param)
        return "" if value is None else self.canonical(value)

    def canonical(self, value: str) -> str:
        return value

    def render(self, value: str) -> str:
        """The kernel parameters that set `value`."""
        return f"{self.param}={value}"

    # -- Tunable ------------------------------------------------------------------

    def read(self, target: str) -> str:
        loader = boot_loader(self.ctx)
        loader.check()
        return self.value_of(loader.configured())

    def booted(self, target: str) -> str | None:
        path = self.ctx.paths.proc("cmdline")
        if not path.exists() and not self.ctx.paths.is_real_root():
            return None  # an image: nothing booted it yet
        return self.value_of(split_cmdline(read_file(path)))

    def write(self, target: str, value: str) -> None:
        loader = boot_loader(self.ctx)
        theirs = self.value_of(loader.others())
        if theirs and theirs != self.canonical(value):
            raise TunableError(
                f"the site's own boot configuration (/etc/default/grub or another grub.d file; the BLS "
                f"entries) already sets {self.render(theirs)}; infernode does not stack a second value: "
                f"change it there, or set {self.name} to {theirs!r} in tuning.overrides")
        loader.set_params(self.name, self.render(value), [c.name for c in BOOT_PARAMS])
        self.ctx.after_writes("bootloader", loader.regenerate)

    def snapshot(self, target: str) -> str:
        # Every boot tunable shares the boot loader's files: each keeps all of them,
        # so a rollback in reverse order ends with the bytes the first apply found.
        return boot_loader(self.ctx).snapshot()

    def restore(self, target: str, original: str) -> None:
        loader = boot_loader(self.ctx)
        loader.restore(original)
        self.ctx.after_writes("bootloader", loader.regenerate)


class _CpuListParam(BootParam):
    checker = staticmethod(symbol_or_cpulist(CPULIST_SYMBOL))

    def canonical(self, value: str) -> str:
        return _canonical_cpulist(value)

    def for_inference(self, cpus: frozenset[int]) -> str:
        """The value `inference` stands for on this host."""
        return format_cpulist(cpus)

    def resolve(self, target: str, desired: Desired) -> Desired:
        if desired.text == CPULIST_SYMBOL:
            cpus = self.ctx.inference
            if not cpus:
                raise TunableError(f"{self.name}: the inference CPU set is empty on this host")
            return parse_desired(self.canonical(self.for_inference(cpus)))
        return parse_desired(self.canonical(desired.text))


class BootIsolcpus(_CpuListParam):
    """`isolcpus=` (boot): CPUs taken out of the scheduler's load balancing (`domain`)
    and, with `managed_irq`, kept free of kernel-managed device interrupts where
    possible. `inference` gives `domain,managed_irq,<inference CPUs>`.

    Only threads pinned to these CPUs run there (the worker is: its unit's
    `CPUAffinity=`), and the scheduler no longer spreads them across the set: the
    engine's threads each stay on the CPU they were pinned to. Use it with
    `nohz_full` and `rcu_nocbs` over the same CPUs (profile `inference-partitioned`)."""

    name = "boot.isolcpus"
    param = "isolcpus"
    checker = staticmethod(_isolcpus_checker)

    def canonical(self, value: str) -> str:
        return _canonical_isolcpus(value)

    def for_inference(self, cpus: frozenset[int]) -> str:
        return f"managed_irq,domain,{format_cpulist(cpus)}"


class BootNohzFull(_CpuListParam):
    """`nohz_full=` (boot): CPUs whose scheduler tick stops while they run a single
    task, so a decode loop is not interrupted a thousand times a second. The kernel
    keeps at least one CPU for timekeeping; `inference` never names a housekeeping CPU."""

    name = "boot.nohz_full"
    param = "nohz_full"


class BootRcuNocbs(_CpuListParam):
    """`rcu_nocbs=` (boot): RCU callbacks of these CPUs run on kthreads that the
    housekeeping CPUs carry, not in softirq on the CPU itself."""

    name = "boot.rcu_nocbs"
    param = "rcu_nocbs"


class BootSkewTick(BootParam):
    """`skew_tick=` (boot): `1` offsets each CPU's scheduler tick so that all CPUs do
    not take the jiffies lock at the same instant (tuned's network-latency sets it)."""

    name = "boot.skew_tick"
    param = "skew_tick"
    checker = staticmethod(choice_validator(("0", "1")))


class BootIommu(BootParam):
    """`iommu=` (boot): `pt` maps host devices 1:1 (pass-through) while the IOMMU
    stays on for VFIO, so NIC and GPU DMA skip IOTLB translation. Not in a shipped
    profile: whether it helps depends on the platform's defaults (many distributions
    already boot with the IOMMU off or in pass-through)."""

    name = "boot.iommu"
    param = "iommu"
    checker = staticmethod(choice_validator(("pt", "nopt")))


class BootHugepages1G(BootParam):
    """`hugepagesz=1G hugepages=N` (boot): 1 GiB pages reserved before memory
    fragments, the reliable way to get them (the run-time `hugepages.1g_per_node`
    fails on a node that has been up a while). A count, or per NUMA node `0:8,1:8`.
    A profile sets 1 GiB pages at boot or at run time, not both."""

    name = "boot.hugepages_1g"
    param = "hugepages"
    checker = staticmethod(_hugepages_checker)

    def value_of(self, params: list[Param]) -> str:
        return hugepages_of_size(params, GIB) or ""

    def render(self, value: str) -> str:
        return f"hugepagesz=1G hugepages={value}"


class _PstateParam(BootParam):
    vendor: ClassVar[str] = ""

    def read(self, target: str) -> str:
        self._require_vendor()
        return super().read(target)

    def _require_vendor(self) -> None:
        text = read_file(self.ctx.paths.proc("cpuinfo"))
        vendors = {line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("vendor_id")}
        if self.vendor not in vendors:
            raise Unsupported(f"{self.param}= is for {self.vendor} CPUs; this host has {', '.join(vendors) or 'none named'}")


class BootIntelPstate(_PstateParam):
    """`intel_pstate=` (boot, Intel CPUs): the driver's mode. `active` (the default on
    HWP CPUs) is what `cpu.energy_performance_preference` needs; `passive`, `no_hwp`
    and `disable` remove that file, so a profile that sets both is refused. tuned's
    cpu-partitioning boots with `disable` (acpi-cpufreq); no infernode profile does."""

    name = "boot.intel_pstate"
    param = "intel_pstate"
    vendor = "GenuineIntel"
    checker = staticmethod(choice_validator(("active", "passive", "no_hwp", "disable")))


class BootAmdPstate(_PstateParam):
    """`amd_pstate=` (boot, AMD CPUs): the driver's mode. Only `active` (amd-pstate-epp)
    offers `cpu.energy_performance_preference`; a profile that sets `passive`,
    `guided` or `disable` with it is refused."""

    name = "boot.amd_pstate"
    param = "amd_pstate"
    vendor = "AuthenticAMD"
    checker = staticmethod(choice_validator(("active", "passive", "guided", "disable")))


class BootNosoftlockup(BootParam):
    """`nosoftlockup` (boot): no soft-lockup detector, whose per-CPU hrtimer and
    watchdog thread otherwise wake every isolated CPU (as tuned's cpu-partitioning).
    `on` adds the flag; the hard-lockup (NMI) watchdog is `kernel.nmi_watchdog`."""

    name = "boot.nosoftlockup"
    param = "nosoftlockup"
    checker = staticmethod(choice_validator(("on",)))

    def value_of(self, params: list[Param]) -> str:
        return "on" if last_value(params, self.param) is not None else ""

    def render(self, value: str) -> str:
        return self.param


class BootMitigations(BootParam):
    """`mitigations=` (boot): the CPU vulnerability mitigations (Spectre, Meltdown,
    MDS, Retbleed...). `off` buys back the system-call and context-switch overhead
    they cost, and exposes the node to those attacks from any code that runs on it.
    An explicit opt-in only: no shipped profile sets it; a site that runs nothing
    but its own inference engine on single-tenant nodes may set it in
    tuning.overrides after its security review."""

    name = "boot.mitigations"
    param = "mitigations"
    checker = staticmethod(choice_validator(("off", "auto", "auto,nosmt")))


BOOT_PARAMS: tuple[type[BootParam], ...] = (
    BootIsolcpus, BootNohzFull, BootRcuNocbs, BootSkewTick, BootIommu, BootHugepages1G,
    BootIntelPstate, BootAmdPstate, BootNosoftlockup, BootMitigations,
)
