"""Scheduler-probe overhead: hackbench with no probes, with infernode's sched
programs (runqueue + offcpu) with hackbench outside and then inside the inference
scope (where off-CPU tracking and outlier events are live for every hackbench
thread), and with bcc's own runqlat, in one run.

Prints the medians, slowdowns, the agent's own CPU time while attached and
per-program run_time_ns / run_cnt from `bpftool prog show` (kernel.bpf_stats_enabled
is set to 1 for the run and restored). Asserts only that every phase produced
numbers: timings on a shared machine are reported, not gated.
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.paths import Paths
from agent.telemetry import Telemetry
from tests.integration.ebpf.conftest import only_ebpf, only_programs

pytestmark = pytest.mark.bench

RUNS = int(os.environ.get("EBPF_BENCH_RUNS", "10"))  # >= 10 for the reported numbers
# Long enough runs (~2 s here) that scheduling noise between runs stays well
# under the 3 % the goal is about; EBPF_BENCH_LOOPS shortens a smoke run.
HACKBENCH = ["hackbench", "-g", "4", "-l", os.environ.get("EBPF_BENCH_LOOPS", "800")]
RUNQLAT = "/usr/sbin/runqlat-bpfcc"


def stop_escalating(proc: subprocess.Popen, grace_s: float = 120.0) -> None:
    """SIGINT (runqlat prints its histogram and detaches its probes), then SIGTERM,
    then SIGKILL: on a loaded machine bcc's teardown can take over 30 s, and a
    benchmark may report noise but must not crash on it."""
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 30.0), (signal.SIGKILL, 30.0)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            print(f"\n{proc.args[0]} still running {wait:.0f}s after {sig.name}; escalating")
CPU_ROOT = Path("/sys/fs/cgroup/cpu")
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def hackbench_runs(n: int = RUNS) -> list[float]:
    out = []
    for _ in range(n):
        res = subprocess.run(HACKBENCH, capture_output=True, text=True, check=True)
        out.append(float(re.search(r"Time:\s*([\d.]+)", res.stdout).group(1)))
    return out


def prog_stats(ids_before: set[int]) -> dict[str, tuple[int, int]]:
    progs = json.loads(subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True,
                                      text=True, check=True).stdout)
    return {f"{p.get('name', '?')}#{p['id']}": (p.get("run_time_ns", 0), p.get("run_cnt", 0))
            for p in progs if p["id"] not in ids_before}


def prog_ids() -> set[int]:
    progs = json.loads(subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True,
                                      text=True, check=True).stdout)
    return {p["id"] for p in progs}


def agent_cpu_s(collector) -> float:
    """CPU time of the collector's own threads: ring-buffer reader and scope refresher."""
    threads = [collector.module._reader, collector._loader]
    return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident)) for t in threads if t and t.is_alive())


def report(name: str, stats: dict[str, tuple[int, int]]) -> None:
    for prog, (ns, cnt) in sorted(stats.items()):
        per = ns / cnt if cnt else 0.0
        print(f"  {name:10s} {prog:40s} run_cnt={cnt:>9d} run_time_ns={ns:>11d} ns/run={per:7.1f}")


@pytest.fixture
def bench_cgroups():
    """(outside, inside): v1 cpu cgroups the bench process moves itself between, so
    hackbench's children start in one; only `inside` is an inference cgroup."""
    if os.geteuid() != 0 or shutil.which("hackbench") is None or not Path(RUNQLAT).exists():
        pytest.skip("needs root, hackbench (rt-tests) and runqlat-bpfcc (bpfcc-tools)")
    d = CPU_ROOT / f"ebpf-bench-{uuid.uuid4().hex[:8]}"
    outside, inside = d / "outside", d / "inside"
    for c in (d, outside, inside):
        c.mkdir()
    enter(outside)
    try:
        yield outside, inside
    finally:
        for c in (outside, inside):
            for pid in (c / "cgroup.procs").read_text().split():
                (CPU_ROOT / "cgroup.procs").write_text(pid)
            c.rmdir()
        d.rmdir()


@contextmanager
def ebpf_node(inside: Path, programs: tuple[str, ...], **settings: object):
    """(node, collector): only the eBPF collector, these programs loaded, `inside` the
    inference scope; stopped on exit."""
    cfg = parse_config({"collectors": {**only_ebpf(), "ebpf": {
        "enabled": True, "inference_cgroups": [str(inside)], "scope_refresh": "200ms",
        "programs": only_programs(*programs), **settings,
    }}})
    node = Telemetry.build(cfg, Paths("/"))
    node.runtime.start()
    collector = next(c for c in node.runtime.collectors if c.name == "ebpf")
    try:
        assert collector.loaded.wait(120) and all(collector.state[p].up for p in programs), collector.state
        yield node, collector
    finally:
        node.runtime.stop()


def enter(cgroup: Path) -> None:
    (cgroup / "cgroup.procs").write_text(str(os.getpid()))


@pytest.fixture
def bpf_stats():
    old = STATS.read_text().strip()
    STATS.write_text("1")
    try:
        yield
    finally:
        STATS.write_text(old)


def test_sched_probe_overhead(bench_cgroups, bpf_stats):
    outside, inside = bench_cgroups
    base1 = hackbench_runs()

    before_ids = prog_ids()
    with ebpf_node(inside, ("runqueue", "offcpu")) as (node, collector):
        # hackbench as "other" threads: only the scope lookup of off-CPU tracking runs
        ours_other = hackbench_runs()
        stats_other = prog_stats(before_ids)
        # hackbench as inference threads: off-CPU tracking and outlier events for all of them
        enter(inside)
        time.sleep(0.5)
        cpu0, wall0 = agent_cpu_s(collector), time.monotonic()
        events0 = sum(collector.events_read.values())
        ours = hackbench_runs()
        agent_cpu, wall = agent_cpu_s(collector) - cpu0, time.monotonic() - wall0
        events = sum(collector.events_read.values()) - events0
        stats_all = prog_stats(before_ids)
        enter(outside)
        node.runtime.scrape()
    stats_inf = {k: (ns - stats_other.get(k, (0, 0))[0], cnt - stats_other.get(k, (0, 0))[1])
                 for k, (ns, cnt) in stats_all.items()}

    before_ids = prog_ids()
    rq = subprocess.Popen([RUNQLAT, "3600", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = rq.stdout.readline()
        assert "Tracing" in line, line
        theirs = hackbench_runs()
        theirs_stats = prog_stats(before_ids)
    finally:
        stop_escalating(rq)

    base2 = hackbench_runs()
    base = statistics.median(base1 + base2)

    def line_for(label: str, runs: list[float]) -> str:
        m = statistics.median(runs)
        return f"  {label:42s} {m:.3f}  slowdown {100 * (m / base - 1):+.2f}%"

    print()
    print(f"hackbench {' '.join(HACKBENCH[1:])}, {RUNS} runs per phase (seconds, median)")
    print(f"  no probes (before/after): {statistics.median(base1):.3f} / {statistics.median(base2):.3f}"
          f"  -> baseline {base:.3f}")
    print(line_for("infernode runqueue+offcpu, hackbench other:", ours_other))
    print(line_for("infernode runqueue+offcpu, hackbench inference:", ours))
    print(line_for("bcc runqlat-bpfcc:", theirs))
    print(f"  agent CPU (reader + scope threads), inference phase: {agent_cpu:.3f} s over {wall:.1f} s wall "
          f"({100 * agent_cpu / wall:.2f}% of one CPU), {events} ring-buffer events decoded")
    # Wall-clock medians on a small VM drift by more than the 3 % at stake (compare
    # the two baselines), so also account for the probes directly: the kernel's own
    # run time of the programs as a share of the CPU time the workload had.
    cpus = os.cpu_count() or 1

    def probe_share(stats: dict[str, tuple[int, int]], runs: list[float]) -> float:
        return 100 * sum(ns for ns, _ in stats.values()) / 1e9 / (sum(runs) * cpus)

    print(f"  probe run time as a share of the workload's CPU ({cpus} CPUs x wall): "
          f"infernode/other {probe_share(stats_other, ours_other):.2f}%, "
          f"infernode/inference {probe_share(stats_inf, ours):.2f}%, "
          f"runqlat {probe_share(theirs_stats, theirs):.2f}%")
    report("ours/other", stats_other)
    report("ours/inf", stats_inf)
    report("runqlat", theirs_stats)
    assert len(ours) == len(ours_other) == len(theirs) == len(base1) == RUNS
    assert any(cnt for _, cnt in stats_other.values()), "bpf_stats recorded no infernode program runs"
