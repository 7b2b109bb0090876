"""`make gpu-check`: on a real NVIDIA machine, run the GPU collector once and
compare what it can with nvidia-smi, within stated tolerances.

Prints one table row per GPU and field, then the collector's time per poll pass
(per pass and per device), and exits 1 on any mismatch. On a machine without an
NVIDIA driver it says so and exits 0 (nothing to check).

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
from dataclasses import dataclass

QUERY = "index,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu,clocks.sm,clocks.mem,pstate"
MIB = 1024 * 1024


@dataclass
class Check:
    gpu: str
    field: str
    smi: str
    ours: str
    tolerance: str
    ok: bool


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


def main() -> int:
    import pynvml

    from agent.collector import CollectorContext
    from agent.events import EventStore
    from agent.paths import Paths
    from collectors.gpu.collector import GpuCollector, GpuSettings
    from collectors.gpu.nvml_reader import NvmlReader, NvmlUnavailable

    try:
        NvmlReader(pynvml).init()
        pynvml.nvmlShutdown()
    except NvmlUnavailable as e:
        print(f"gpu-check: SKIPPED, no usable NVIDIA GPU here: {e.reason}")
        return 0
    smi_bin = shutil.which("nvidia-smi")
    if smi_bin is None:
        print("gpu-check: NVML works but nvidia-smi is not on PATH; cannot compare", file=sys.stderr)
        return 1
    ctx = CollectorContext(paths=Paths("/"), events=EventStore(), settings=GpuSettings(poll_interval=3600),
                           log=logging.getLogger("gpu-check"))
    collector = GpuCollector(ctx, nvml=pynvml)
    collector.start()
    try:
        if not collector.wait_first_poll(30):
            print("gpu-check: NVML did not answer within 30 s", file=sys.stderr)
            return 1
        collector.refresh()
        smi = subprocess.run([smi_bin, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        samples = list(collector.collect())
        # Time per pass on this hardware: fast passes (what runs every second) and full passes.
        times = {}
        for label, slow in (("fast pass", False), ("full pass (fast + slow)", True)):
            cpu = []
            for _ in range(20):
                t0 = time.process_time()
                collector.refresh(slow=slow)
                cpu.append(time.process_time() - t0)
            times[label] = statistics.median(cpu)
        ndev = len(collector._caches)  # noqa: SLF001 - a diagnostic tool
    finally:
        collector.stop()
    checks = compare(parse_smi_csv(smi), samples)
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
