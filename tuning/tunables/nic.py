"""NIC tunables: MTU, RSS channels, ring sizes, queue IRQ affinity, irqbalance.

Interfaces are those in `tuning.nics`, or, when that is empty, the PCI NICs on the
GPUs' NUMA nodes (every PCI NIC on a host without GPUs).
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.cpulist import CpuListError, format_cpulist, parse_cpulist
from tuning.desired import Desired, parse_desired
from tuning.tunable import (
    MANAGED_IRQ_ERRNOS,
    Refused,
    Tunable,
    TunableError,
    TuneContext,
    Unsupported,
    int_validator,
    read_file,
    restore_file,
    snapshot_file,
    symbol_or_cpulist,
    write_file,
)


def selected_nics(ctx: TuneContext) -> list[str]:
    if ctx.settings.nics:
        return list(ctx.settings.nics)
    base = ctx.paths.sys("class", "net")
    if not base.is_dir():
        return []
    gpu_nodes = ctx.topology.gpu_nodes
    pci = {n.name: n for n in ctx.topology.nics}
    out = []
    for iface in sorted(p.name for p in base.iterdir()):
        if not (base / iface / "device").exists():
            continue  # virtual: lo, bridges, veth
        # A device that is not a PCI function has no NUMA node: it is kept.
        node = pci[iface].numa_node if iface in pci else None
        if not gpu_nodes or node is None or node in gpu_nodes:
            out.append(iface)
    return out


def device_msi_irqs(device: Path) -> list[int]:
    """The MSI/MSI-X vectors of a network interface's device (`/sys/class/net/<if>/device`):
    its PCI function's `msi_irqs`; for a virtio NIC, whose device is the virtio device
    (no msi_irqs of its own), those of the PCI function it sits on."""
    candidates = [device]
    try:
        if (device / "subsystem").resolve().name == "virtio":
            candidates.append(device / "..")  # resolved by the kernel after the symlink: the PCI function
    except OSError:
        pass
    for d in candidates:
        msi = d / "msi_irqs"
        if msi.is_dir():
            return sorted(int(p.name) for p in msi.iterdir() if p.name.isdigit())
    return []


def nic_local_cpus(ctx: TuneContext, iface: str) -> frozenset[int]:
    """The interface's local CPUs (the host topology's rule: its own list, else its
    node's); every CPU when it has neither."""
    nic = next((n for n in ctx.topology.nics if n.name == iface), None)
    return frozenset(nic.local_cpus) if nic is not None and nic.local_cpus else ctx.topology.all_cpus


class NicMtu(Tunable):
    """MTU of each selected interface (`/sys/class/net/<if>/mtu`).

    Written through sysfs, which calls the same kernel path as netlink's
    IFLA_MTU (dev_set_mtu), so fixture roots work. Not set by the shipped
    profiles: jumbo frames must match the switch fabric; set `nic.mtu` per site in
    `tuning.overrides`."""

    name = "nic.mtu"
    family = "network"
    checker = staticmethod(int_validator(68, 65535))

    def targets(self) -> list[str]:
        return selected_nics(self.ctx)

    def read(self, target: str) -> str:
        return read_file(self.ctx.paths.sys("class", "net", target, "mtu")).strip()

    def write(self, target: str, value: str) -> None:
        write_file(self.ctx.paths.sys("class", "net", target, "mtu"), value)


def parse_ethtool_pairs(text: str) -> tuple[dict[str, int | None], dict[str, int | None]]:
    """`ethtool -l` / `-g` output → (pre-set maximums, current), keys lowercased
    ("rx", "tx", "combined", "rx mini"...), "n/a" → None."""
    maxima: dict[str, int | None] = {}
    current: dict[str, int | None] = {}
    section: dict[str, int | None] | None = None
    for line in text.splitlines():
        head = line.strip().lower()
        if head.startswith("pre-set maximums"):
            section = maxima
            continue
        if head.startswith("current hardware settings"):
            section = current
            continue
        m = re.match(r"^\s*([A-Za-z][A-Za-z0-9 -]*):\s*(\S+)\s*$", line)
        if section is None or not m:
            continue
        value = m.group(2)
        section[m.group(1).strip().lower()] = int(value) if value.isdigit() else None
    return maxima, current


def _format_pairs(values: dict[str, int | None], keys: tuple[str, ...]) -> str:
    return " ".join(f"{k}={values.get(k) or 0}" for k in keys)


class _Ethtool(Tunable):
    family = "network"
    show_flag = ""
    set_flag = ""
    what = ""

    def targets(self) -> list[str]:
        return selected_nics(self.ctx)

    def _query(self, target: str) -> tuple[dict[str, int | None], dict[str, int | None]]:
        # ethtool speaks netlink to the running kernel, which a fixture root is not.
        if not self.ctx.paths.is_real_root():
            raise Unsupported(f"{self.what}: ethtool reaches only the running kernel, not an alternate root")
        try:
            proc = self.ctx.run(["ethtool", self.show_flag, target])
        except FileNotFoundError:
            raise Unsupported("ethtool is not installed") from None
        if proc.returncode != 0:
            raise Unsupported(f"{target} has no {self.what} settings ({(proc.stderr or proc.stdout).strip()})")
        return parse_ethtool_pairs(proc.stdout)

    def _keys(self, maxima: dict[str, int | None]) -> tuple[str, ...]:
        raise NotImplementedError

    def read(self, target: str) -> str:
        maxima, current = self._query(target)
        return _format_pairs(current, self._keys(maxima))

    def resolve(self, target: str, desired: Desired) -> Desired:
        if desired.kind != "exact" or "=" in desired.text:
            return desired
        maxima, _ = self._query(target)
        keys = self._keys(maxima)
        if desired.text == "max":
            return parse_desired(_format_pairs(maxima, keys))
        n = int(desired.text)
        over = [k for k in keys if (maxima.get(k) or 0) < n]
        if over:
            raise TunableError(f"{target}: {self.what} {n} exceeds the maximum {_format_pairs(maxima, keys)}")
        return parse_desired(" ".join(f"{k}={n}" for k in keys))

    def write(self, target: str, value: str) -> None:
        args: list[str] = []
        for pair in value.split():
            key, _, n = pair.partition("=")
            args += [key, n]
        proc = self.ctx.run(["ethtool", self.set_flag, target, *args])
        # ethtool exits non-zero when nothing changed ("unmodified, ignoring"); the
        # engine's read-back decides whether the value holds.
        if proc.returncode != 0 and "unmodified" not in (proc.stderr + proc.stdout):
            raise TunableError(f"ethtool {self.set_flag} {target} {' '.join(args)}: {(proc.stderr or proc.stdout).strip()}")

    @staticmethod
    def _check(d: Desired) -> str | None:
        if d.kind == "exact" and (d.text == "max" or (d.text.isdigit() and int(d.text) > 0)):
            return None
        return f"'max' or a positive integer (got {d.text!r})"


class NicChannels(_Ethtool):
    """RSS channels (queues) of each selected NIC (`ethtool -l` / `-L`).

    `max`: one queue per available vector spreads receive work over the NIC-local
    CPUs. Combined channels where the driver has them, else rx and tx (veth)."""

    name = "nic.channels"
    show_flag, set_flag, what = "-l", "-L", "channels"
    checker = staticmethod(_Ethtool._check)

    def _keys(self, maxima: dict[str, int | None]) -> tuple[str, ...]:
        if maxima.get("combined"):
            return ("combined",)
        return tuple(k for k in ("rx", "tx") if maxima.get(k))


class NicRings(_Ethtool):
    """Ring (descriptor queue) sizes of each selected NIC (`ethtool -g` / `-G`).

    Larger rings absorb bursts without drops at the price of queueing delay, so
    only the throughput profile sets them. Drivers without ring settings (veth)
    report unsupported."""

    name = "nic.rings"
    show_flag, set_flag, what = "-g", "-G", "rings"
    checker = staticmethod(_Ethtool._check)

    def _keys(self, maxima: dict[str, int | None]) -> tuple[str, ...]:
        return tuple(k for k in ("rx", "tx") if maxima.get(k))


class NicIrqAffinity(Tunable):
    """CPU affinity of each selected NIC's queue interrupts
    (`/proc/irq/N/smp_affinity_list` for N in `/sys/class/net/<if>/device/msi_irqs`).

    `local`: the housekeeping CPUs on the NIC's NUMA node (all of the NIC's local
    CPUs when it has none), so packet processing stays on the NIC's node and off
    the inference CPU set. Or an explicit CPU list. Kernel-managed interrupts
    (drivers that spread their own vectors) refuse the write (EPERM on 6.18, EIO on
    older kernels): they are reported as refused, not drift, and the apply goes on."""

    name = "nic.irq_affinity"
    family = "network"
    checker = staticmethod(symbol_or_cpulist("local"))

    def targets(self) -> list[str]:
        out = []
        for iface in selected_nics(self.ctx):
            out += [f"{iface}/irq{n}" for n in device_msi_irqs(self.ctx.paths.sys("class", "net", iface, "device"))]
        return out

    def _path(self, target: str) -> Path:
        return self.ctx.paths.proc("irq", target.rsplit("/irq", 1)[1], "smp_affinity_list")

    def read(self, target: str) -> str:
        return format_cpulist(parse_cpulist(read_file(self._path(target))))

    def snapshot(self, target: str) -> str:
        return read_file(self._path(target))

    def resolve(self, target: str, desired: Desired) -> Desired:
        if desired.text != "local":
            return parse_desired(format_cpulist(parse_cpulist(desired.text)))
        local = nic_local_cpus(self.ctx, target.rsplit("/irq", 1)[0])
        return parse_desired(format_cpulist((local & self.ctx.housekeeping) or local))

    def write(self, target: str, value: str) -> None:
        try:
            write_file(self._path(target), value)
        except OSError as e:
            if e.errno in MANAGED_IRQ_ERRNOS:
                raise Refused(f"kernel-managed interrupt ({e.strerror}): the driver places it") from None
            raise


def env_value(text: str, key: str) -> str | None:
    """The value of KEY=... in a shell-style defaults file (last one wins)."""
    found = None
    for line in text.splitlines():
        m = re.match(rf"^\s*(?:export\s+)?{re.escape(key)}=(.*)$", line)
        if m:
            found = m.group(1).strip().strip("\"'")
    return found


def with_env_value(text: str, key: str, value: str) -> str:
    """`text` with KEY set to value: the last assignment replaced, or a line appended."""
    lines = text.splitlines(keepends=True)
    for i in range(len(lines) - 1, -1, -1):
        if re.match(rf"^\s*(?:export\s+)?{re.escape(key)}=", lines[i]):
            lines[i] = f'{key}="{value}"\n'
            return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines) + f'{key}="{value}"\n'


class IrqbalanceBannedCpus(Tunable):
    """CPUs irqbalance must not place interrupts on
    (`IRQBALANCE_BANNED_CPULIST` in `/etc/default/irqbalance`), only when irqbalance runs.

    `inference`: the inference CPU set, so no device interrupt lands on a core
    serving a GPU. irqbalance reads the file at start; the engine restarts it
    (`systemctl try-restart irqbalance`) after a change."""

    name = "irqbalance.banned_cpus"
    family = "network"
    persistent = True  # /etc/default/irqbalance outlives a reboot
    KEY = "IRQBALANCE_BANNED_CPULIST"

    @staticmethod
    def _check_value(d: Desired) -> str | None:
        if d.kind == "exact" and d.text == "inference":
            return None
        try:
            if d.kind == "exact":
                parse_cpulist(d.text)
                return None
        except CpuListError:
            pass
        return f"'inference' or a CPU list like 0-3,8 (got {d.text!r})"

    checker = _check_value

    def _config(self) -> Path:
        return self.ctx.paths.etc("default", "irqbalance")

    def _running(self) -> bool:
        proc = self.ctx.paths.proc()
        for d in proc.iterdir() if proc.is_dir() else ():
            if d.name.isdigit():
                try:
                    if (d / "comm").read_text().strip() == "irqbalance":
                        return True
                except OSError:
                    continue
        return False

    def targets(self) -> list[str]:
        return ["irqbalance"]

    def read(self, target: str) -> str:
        if not self._running():
            raise Unsupported("irqbalance is not running")
        path = self._config()
        text = path.read_text() if path.exists() else ""
        value = env_value(text, self.KEY) or ""
        return format_cpulist(parse_cpulist(value)) if value else ""

    def resolve(self, target: str, desired: Desired) -> Desired:
        if desired.text == "inference":
            return parse_desired(format_cpulist(self.ctx.inference))
        return desired

    def snapshot(self, target: str) -> str:
        return snapshot_file(self._config())

    def restore(self, target: str, original: str) -> None:
        restore_file(self._config(), original)
        self._restart()

    def write(self, target: str, value: str) -> None:
        path = self._config()
        text = path.read_text() if path.exists() else ""
        path.write_text(with_env_value(text, self.KEY, value))
        self._restart()

    def _restart(self) -> None:
        if self.ctx.paths.is_real_root():
            try:
                self.ctx.run(["systemctl", "try-restart", "irqbalance.service"])
            except FileNotFoundError:
                pass
