"""Where the interrupts other than the NICs' are handled: the housekeeping CPUs.

NIC interrupts are `nic.irq_affinity`'s (steered to the NIC's own node); every
other interrupt in /proc/irq (storage, USB, ACPI, serial, a GPU's own) is placed
here, so that no device interrupt takes an inference CPU mid-step.

Kernel-managed interrupts (multi-queue block and NIC drivers that spread one
vector per CPU themselves) cannot be moved: the kernel refuses the write (EPERM on
6.18, EIO on kernels whose write_irq_affinity() returns -EIO for it). The engine records them as refused and goes on; `isolcpus=
managed_irq` (boot.isolcpus) is what keeps those off isolated CPUs, at boot.
"""

from __future__ import annotations

from pathlib import Path

from agent.cpulist import format_cpulist, parse_cpulist
from tuning.desired import Desired
from tuning.tunable import MANAGED_IRQ_ERRNOS, Refused, Tunable, read_file, symbol_or_cpulist, write_file
from tuning.tunables.isolation import housekeeping_resolved
from tuning.tunables.nic import device_msi_irqs


class IrqAffinity(Tunable):
    """CPUs that handle each interrupt that is not a NIC's (`/proc/irq/N/smp_affinity_list`).

    `housekeeping`: storage completions, USB, ACPI and serial interrupts stay off
    the inference CPUs. Kernel-managed interrupts (one vector per CPU, placed by
    the driver) are reported as refused, not drift: see `boot.isolcpus` with
    `managed_irq`. With irqbalance running, `irqbalance.banned_cpus` keeps it from
    moving them back."""

    name = "irq.affinity"
    family = "isolation"
    checker = staticmethod(symbol_or_cpulist("housekeeping"))

    def _nic_irqs(self) -> set[str]:
        irqs: set[str] = set()
        net = self.ctx.paths.sys("class", "net")
        if net.is_dir():
            for iface in net.iterdir():
                irqs.update(str(n) for n in device_msi_irqs(iface / "device"))
        return irqs

    def targets(self) -> list[str]:
        root = self.ctx.paths.proc("irq")
        if not root.is_dir():
            return []
        nics = self._nic_irqs()
        numbers = sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and p.name not in nics)
        return [f"irq{n}" for n in numbers]

    def _path(self, target: str) -> Path:
        return self.ctx.paths.proc("irq", target.removeprefix("irq"), "smp_affinity_list")

    def read(self, target: str) -> str:
        return format_cpulist(parse_cpulist(read_file(self._path(target))))

    def snapshot(self, target: str) -> str:
        return read_file(self._path(target))

    def resolve(self, target: str, desired: Desired) -> Desired:
        return housekeeping_resolved(self.ctx, desired)

    def write(self, target: str, value: str) -> None:
        try:
            write_file(self._path(target), value)
        except OSError as e:
            if e.errno in MANAGED_IRQ_ERRNOS:
                name = self._action(target)
                raise Refused(f"kernel-managed interrupt{name} ({e.strerror}): the driver places it on "
                              "every CPU; boot.isolcpus with managed_irq keeps it off isolated CPUs") from None
            raise

    def _action(self, target: str) -> str:
        try:
            actions = read_file(self.ctx.paths.sys("kernel", "irq", target.removeprefix("irq"), "actions"))
        except Exception:  # noqa: BLE001 - only a label
            return ""
        return f" {actions}" if actions else ""
