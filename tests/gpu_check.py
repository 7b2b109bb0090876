"""`make gpu-check`: on a real NVIDIA machine, run the GPU collector once and
compare what it can with nvidia-smi, within stated tolerances.

Prints one table row per GPU and field, then the collector's time per poll pass
(per pass and per device), and exits 1 on any mismatch. On a machine without an
NVIDIA driver it says "no GPU" and exits 0 (nothing to check). Beside nvidia-smi's
basic fields it checks what is risky (tests/gpu_check_conversions.py): energy (mJ)
against power, NVLink bytes (KiB) per link against the all-links aggregate, throttle
time (ns) from the field against the deprecated call, PCIe generation and width
against nvidia-smi and sysfs, the topology against `nvidia-smi topo -m`, and the
kernel-log XID parser against the lines the kernel log holds (read-only). About 10 s
of wall time on one GPU; nothing is downloaded.

The two readings are a moment apart, so fast-moving values get tolerances:
utilization +-15 points, power +-max(15 W, 10%), temperature +-3 C, SM clock
+-max(100 MHz, 10%), memory clock +-max(50 MHz, 5%), memory used +-max(64 MiB, 1%
of total) against either nvidia-smi's used or used+reserved (drivers differ in
whether "used" includes the reserved part), memory total +-1 MiB, pstate exact.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from tests.gpu_check_conversions import Check

QUERY = "index,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu,clocks.sm,clocks.mem,pstate"
MIB = 1024 * 1024
POWER_READS, POWER_READ_INTERVAL = 5, 1.0  # 5 s of power against the energy counter's rise


def parse_smi_csv(text: str) -> dict[str, dict[str, str]]:
    """nvidia-smi --format=csv,noheader,nounits output -> {index: {field: value}}."""
    names = QUERY.split(",")
    out: dict[str, dict[str, str]] = {}
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(names):
            raise ValueError(f"nvidia-smi line has {len(cells)} fields, expected {len(names)}: {line!r}")
        row = dict(zip(names, cells, strict=False))
        out[row["index"]] = row
    return out


def _num(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def compare(smi: dict[str, dict[str, str]], samples: Iterable) -> list[Check]:
    by: dict[tuple[str, str, tuple], float] = {}
    for s in samples:
        if "gpu" in s.labels:
            extra = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("gpu", "uuid", "pci_bus_id", "model_name")))
            by[(s.labels["gpu"], s.name, extra)] = float(s.value)
    checks: list[Check] = []

    def ours(gpu: str, name: str, **labels: str) -> float | None:
        return by.get((gpu, name, tuple(sorted(labels.items()))))

    for gpu, row in sorted(smi.items(), key=lambda kv: int(kv[0])):
        def add(field: str, smi_v: float | None, our_v: float | None, tol: float, tol_text: str, alt: float | None = None) -> None:
            if smi_v is None or our_v is None:
                checks.append(Check(gpu, field, row.get(field, "?"), "-" if our_v is None else f"{our_v:g}",
                                    "skipped: not reported by both", True))
                return
            ok = abs(smi_v - our_v) <= tol or (alt is not None and abs(smi_v - alt) <= tol)
            checks.append(Check(gpu, field, f"{smi_v:g}", f"{our_v:g}", tol_text, ok))

        util = ours(gpu, "infernode_gpu_utilization_ratio", engine="gpu")
        add("utilization.gpu", _num(row["utilization.gpu"]), None if util is None else util * 100, 15, "+-15 points")
        total = ours(gpu, "infernode_gpu_memory_total_bytes")
        used = ours(gpu, "infernode_gpu_memory_used_bytes")
        reserved = ours(gpu, "infernode_gpu_memory_reserved_bytes") or 0.0
        total_mib = None if total is None else total / MIB
        add("memory.total", _num(row["memory.total"]), total_mib, 1, "+-1 MiB")
        tol = max(64.0, 0.01 * (total_mib or 0))
        add("memory.used", _num(row["memory.used"]), None if used is None else used / MIB, tol,
            f"+-{tol:.0f} MiB (used or used+reserved)", None if used is None else (used + reserved) / MIB)
        power = ours(gpu, "infernode_gpu_power_watts")
        smi_power = _num(row["power.draw"])
        add("power.draw", smi_power, power, max(15.0, 0.1 * (smi_power or 0)), "+-max(15 W, 10%)")
        add("temperature.gpu", _num(row["temperature.gpu"]),
            ours(gpu, "infernode_gpu_temperature_celsius", sensor="gpu"), 3, "+-3 C")
        sm = ours(gpu, "infernode_gpu_clock_hertz", clock="sm")
        smi_sm = _num(row["clocks.sm"])
        add("clocks.sm", smi_sm, None if sm is None else sm / 1e6, max(100.0, 0.1 * (smi_sm or 0)), "+-max(100 MHz, 10%)")
        mem = ours(gpu, "infernode_gpu_clock_hertz", clock="memory")
        smi_mem = _num(row["clocks.mem"])
        add("clocks.mem", smi_mem, None if mem is None else mem / 1e6, max(50.0, 0.05 * (smi_mem or 0)), "+-max(50 MHz, 5%)")
        pstate = row["pstate"]
        smi_p = _num(pstate[1:]) if pstate.startswith("P") else None
        add("pstate", smi_p, ours(gpu, "infernode_gpu_performance_state"), 0, "exact")
    return checks


def format_table(checks: list[Check]) -> str:
    from agent.table import format_rows

    return format_rows(("GPU", "FIELD", "NVIDIA-SMI", "INFERNODE", "TOLERANCE", "RESULT"),
                       [(c.gpu, c.field, c.smi, c.ours, c.tolerance, "ok" if c.ok else "MISMATCH") for c in checks])


def _smi(smi_bin: str, *args: str) -> str | None:
    """nvidia-smi's output, or None when this nvidia-smi does not know the query."""
    p = subprocess.run([smi_bin, *args], capture_output=True, text=True, timeout=60)
    return p.stdout if p.returncode == 0 else None


def _by(samples: Iterable, name: str, **labels: str) -> dict[str, float]:
    """{gpu index: value} for one series per GPU."""
    return {s.labels["gpu"]: float(s.value) for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())}


def _nvlink_raw(nvml, handle, links: list[int]) -> list[tuple[str, float | None, float | None, float | None]]:  # noqa: ANN001, E501 - pynvml and its handle
    """Per-link sums around one all-links read, straight from NVML (KiB)."""
    from collectors.gpu import fields as F

    def total(scopes: list[int], fid: int) -> float | None:
        try:
            vals = nvml.nvmlDeviceGetFieldValues(handle, [(fid, scope) for scope in scopes])
        except nvml.NVMLError:
            return None
        got = [F.decode_field_value(v.valueType, v.value) for v in vals if v.nvmlReturn == 0]
        return sum(x for x in got if x is not None) if len(got) == len(scopes) else None

    out = []
    for fid, direction in F.NVLINK_THROUGHPUT_FIELDS.items():
        before = total(links, fid)
        agg = total([F.NVLINK_SCOPE_ALL_LINKS], fid)
        after = total(links, fid)
        out.append((direction, before, agg, after))
    return out


def _violation_raw(nvml, handle) -> tuple[float | None, float | None]:  # noqa: ANN001
    from collectors.gpu import fields as F

    field = deprecated = None
    try:
        v = nvml.nvmlDeviceGetFieldValues(handle, [74])[0]
        if v.nvmlReturn == 0:
            field = F.decode_field_value(v.valueType, v.value)
    except nvml.NVMLError:
        pass
    try:
        deprecated = F.clean_value(nvml.nvmlDeviceGetViolationStatus(handle, 0).violationTime)
    except (nvml.NVMLError, AttributeError):
        pass
    return field, deprecated


def _kmsg_messages(path: str = "/dev/kmsg") -> list[str] | None:
    """Every record the kernel log holds now, read without blocking and without writing."""
    import os

    from collectors.gpu.kmsg import parse_record

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    out = []
    try:
        while True:
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:
                continue
            rec = parse_record(raw)
            if rec is not None:
                out.append(rec.message)
    finally:
        os.close(fd)
    return out


def _read_sysfs(bdf: str, name: str) -> str | None:
    try:
        return Path("/sys/bus/pci/devices", bdf, name).read_text().strip()
    except OSError:
        return None


def main() -> int:
    import pynvml

    from agent.collector import CollectorContext
    from agent.events import EventStore
    from agent.paths import Paths
    from collectors.gpu.collector import GpuCollector, GpuSettings
    from collectors.gpu.fields import normalize_bus_id
    from collectors.gpu.nvml_reader import NvmlReader, NvmlUnavailable
    from collectors.gpu.pcie_link import parse_link_width
    from collectors.gpu.topology import gpu_topology
    from tests import gpu_check_conversions as conv

    try:
        NvmlReader(pynvml).init()
        pynvml.nvmlShutdown()
    except NvmlUnavailable as e:
        print(f"gpu-check: no GPU: {e.reason}; nothing to check")
        return 0
    smi_bin = shutil.which("nvidia-smi")
    if smi_bin is None:
        print("gpu-check: NVML works but nvidia-smi is not on PATH; cannot compare", file=sys.stderr)
        return 1
    ctx = CollectorContext(paths=Paths(Path("/")), events=EventStore(), settings=GpuSettings(poll_interval=3600),
                           log=logging.getLogger("gpu-check"))
    collector = GpuCollector(ctx, nvml=pynvml)
    collector.start()
    extra: list[Check] = []
    try:
        if not collector.wait_first_poll(30):
            print("gpu-check: NVML did not answer within 30 s", file=sys.stderr)
            return 1
        collector.refresh()
        t0 = time.monotonic()
        first = list(collector.collect())
        watts: dict[str, list[float]] = {}
        for _ in range(POWER_READS):  # power readings for the energy check
            time.sleep(POWER_READ_INTERVAL)
            collector.refresh(slow=False)
            for g, w in _by(collector.collect(), "infernode_gpu_power_watts").items():
                watts.setdefault(g, []).append(w)
        collector.refresh()
        seconds = time.monotonic() - t0
        smi = subprocess.run([smi_bin, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        samples = list(collector.collect())
        e1, e2 = _by(first, "infernode_gpu_energy_joules_total"), _by(samples, "infernode_gpu_energy_joules_total")
        caches = list(collector._caches)  # noqa: SLF001 - a diagnostic tool
        for c in caches:
            g = str(c.dev.index)
            extra.append(conv.energy_check(g, e1.get(g), e2.get(g), seconds, watts.get(g, [])))
            if c.dev.nvlinks:
                for direction, before, agg, after in _nvlink_raw(pynvml, c.dev.handle, c.dev.nvlinks):
                    extra.append(conv.nvlink_check(g, direction, before, agg, after))
            else:
                extra.append(conv.skipped(g, "nvlink KiB (aggregate vs links)", "no NVLink"))
            extra.append(conv.violation_check(g, *_violation_raw(pynvml, c.dev.handle)))
        # PCIe against nvidia-smi and sysfs.
        pcie = _smi(smi_bin, "--query-gpu=index,pcie.link.gen.current,pcie.link.gen.max,"
                    "pcie.link.width.current,pcie.link.width.max", "--format=csv,noheader,nounits")
        rows = {}
        for line in (pcie or "").strip().splitlines():
            cells = [x.strip() for x in line.split(",")]
            if len(cells) == 5:
                rows[cells[0]] = cells[1:]
        for c in caches:
            g, bdf = str(c.dev.index), normalize_bus_id(c.dev.pci_bus_id)
            row = rows.get(g)
            for i, (name, metric, state) in enumerate((
                    ("pcie gen current", "infernode_gpu_pcie_link_generation", "current"),
                    ("pcie gen max", "infernode_gpu_pcie_link_generation", "max"),
                    ("pcie width current", "infernode_gpu_pcie_link_width", "current"),
                    ("pcie width max", "infernode_gpu_pcie_link_width", "max"))):
                ours = _by(samples, metric, state=state).get(g)
                extra.append(conv.exact(g, name, _num(row[i]) if row else None, ours, "nvidia-smi"))
            extra.append(conv.exact(g, "pcie width current", parse_link_width(_read_sysfs(bdf, "current_link_width")),
                                    _by(samples, "infernode_gpu_pcie_link_width", state="current").get(g), "sysfs"))
            extra.append(conv.exact(g, "pcie width device_max", parse_link_width(_read_sysfs(bdf, "max_link_width")),
                                    _by(samples, "infernode_gpu_pcie_link_width", state="device_max").get(g), "sysfs"))
        # Topology against `nvidia-smi topo -m`.
        topo = _smi(smi_bin, "topo", "-m")
        try:
            matrix = conv.parse_topo_matrix(topo or "")
            extra.extend(conv.topology_checks(matrix, gpu_topology(Paths(Path("/")), pynvml)))
        except ValueError as e:
            extra.append(conv.skipped("-", "topology", f"cannot read `nvidia-smi topo -m`: {e}"))
        # Time per pass on this hardware: fast passes (what runs every second) and full passes.
        times = {}
        for label, slow in (("fast pass", False), ("full pass (fast + slow)", True)):
            cpu = []
            for _ in range(20):
                t1 = time.process_time()
                collector.refresh(slow=slow)
                cpu.append(time.process_time() - t1)
            times[label] = statistics.median(cpu)
        ndev = len(caches)
    finally:
        collector.stop()
    messages = _kmsg_messages()
    extra.append(conv.kmsg_check(messages) if messages is not None
                 else conv.skipped("-", "kernel-log XID lines", "/dev/kmsg not readable (run as root)"))
    checks = compare(parse_smi_csv(smi), samples) + extra
    print(format_table(checks))
    for label, t in times.items():
        print(f"{label}: median CPU {t * 1e3:.2f} ms over 20 ({t * 1e3 / max(ndev, 1):.2f} ms per device, {ndev} GPUs)")
    bad = [c for c in checks if not c.ok]
    if bad:
        print(f"gpu-check: {len(bad)} mismatch(es)", file=sys.stderr)
        return 1
    print(f"gpu-check: ok ({len(checks)} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
