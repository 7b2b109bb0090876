"""`make bench`: infernode's /metrics against Debian's prometheus-node-exporter
(default collectors), side by side in one run on this machine.

Measured for each: median and p99 scrape latency over SCRAPES scrapes (the two
targets alternate, so both see the same background load), CPU seconds per scrape
(utime+stime of the process from /proc/<pid>/stat across the scrapes), and resident
memory (VmRSS / VmHWM). Then infernode's steady CPU at a 15 s scrape interval,
measured directly: CPU over STEADY_S seconds with a scrape every 15 s, as % of
one core; the extrapolation (idle CPU + per-scrape CPU / 15 s) is printed beside it.

Prints a table and writes .bench/scrape.json. The goals are reported, not asserted:
timings on a shared machine are not a pass/fail signal.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness.agent import Agent
from tests.harness.prometheus import free_port

pytestmark = pytest.mark.bench

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
SCRAPES = int(os.environ.get("INFERNODE_BENCH_SCRAPES", "200"))
STEADY_S = float(os.environ.get("INFERNODE_BENCH_STEADY_S", "60"))
INTERVAL_S = 15.0
# Prometheus 2.x's scrape Accept header: both targets answer with OpenMetrics.
ACCEPT = ("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
          "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime+stime of all the process's threads (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


class Target:
    def __init__(self, name: str, port: int, pid: int) -> None:
        self.name, self.port, self.pid = name, port, pid
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.latencies: list[float] = []
        self.bytes = 0
        self.series = 0

    def scrape(self) -> float:
        t0 = time.perf_counter()
        self.conn.request("GET", "/metrics", headers={"Accept": ACCEPT})
        resp = self.conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - t0
        assert resp.status == 200, (self.name, resp.status, body[:200])
        self.bytes = len(body)
        self.series = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
        return elapsed


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def start_node_exporter(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = open(workdir / "node_exporter.log", "wb")
    proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node_exporter exited: {(workdir / 'node_exporter.log').read_text()}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/metrics")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("node_exporter did not answer within 30s")


@pytest.mark.skipif(not Path(NODE_EXPORTER).exists(), reason="prometheus-node-exporter not installed")
def test_scrape_vs_node_exporter(tmp_path, repo):
    ne_proc, ne_port = start_node_exporter(tmp_path)
    try:
        with Agent.start(tmp_path / "agent", {}) as agent:
            results = run_bench(Target("infernode", agent.port, agent.proc.pid),
                                Target("node_exporter", ne_port, ne_proc.pid), agent)
    finally:
        ne_proc.terminate()
        ne_proc.wait(10)
    report(results, repo / ".bench" / "scrape.json")


def run_bench(ours: Target, theirs: Target, agent: Agent) -> dict:
    targets = (ours, theirs)
    for t in targets:
        for _ in range(5):  # warm caches, connections, first-run imports
            t.scrape()
    cpu0 = {t.name: cpu_seconds(t.pid) for t in targets}
    for _ in range(SCRAPES):
        for t in targets:
            t.latencies.append(t.scrape())
    cpu1 = {t.name: cpu_seconds(t.pid) for t in targets}

    results: dict = {"scrapes": SCRAPES, "host": os.uname().nodename, "cpus": os.cpu_count(),
                     "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3], "targets": {}}
    for t in targets:
        mem = memory_kib(t.pid)
        results["targets"][t.name] = {
            "median_s": statistics.median(t.latencies),
            "p99_s": percentile(t.latencies, 0.99),
            "max_s": max(t.latencies),
            "cpu_s_per_scrape": (cpu1[t.name] - cpu0[t.name]) / SCRAPES,
            "rss_bytes": mem["VmRSS"] * 1024,
            "peak_rss_bytes": mem["VmHWM"] * 1024,
            "body_bytes": t.bytes,
            "samples": t.series,
        }
    results["steady"] = steady_cpu(ours, results["targets"]["infernode"]["cpu_s_per_scrape"])
    return results


def steady_cpu(ours: Target, cpu_per_scrape: float) -> dict:
    """Agent CPU over STEADY_S with a scrape every 15 s (as Prometheus would)."""
    time.sleep(2)  # let the benchmark's burst settle
    c0, t0 = cpu_seconds(ours.pid), time.monotonic()
    next_scrape = t0
    scrapes = 0
    while True:
        now = time.monotonic()
        if now - t0 >= STEADY_S:
            break
        if now >= next_scrape:
            ours.scrape()
            scrapes += 1
            next_scrape += INTERVAL_S
        time.sleep(max(0.0, min(next_scrape, t0 + STEADY_S) - time.monotonic()))
    wall = time.monotonic() - t0
    used = cpu_seconds(ours.pid) - c0
    # Idle share: what the measured window used beyond its scrapes' per-scrape cost.
    idle_per_s = max(0.0, used - scrapes * cpu_per_scrape) / wall
    return {
        "window_s": wall,
        "scrapes": scrapes,
        "cpu_s": used,
        "measured_core_pct": 100 * used / wall,
        "extrapolated_core_pct": 100 * (idle_per_s + cpu_per_scrape / INTERVAL_S),
        "clock_tick_s": 1 / TICK,
    }


def report(results: dict, path: Path) -> None:
    ours, theirs = results["targets"]["infernode"], results["targets"]["node_exporter"]
    steady = results["steady"]
    rows = [("", "infernode", "node_exporter")]
    rows.append(("median latency (ms)", f"{ours['median_s'] * 1e3:.2f}", f"{theirs['median_s'] * 1e3:.2f}"))
    rows.append(("p99 latency (ms)", f"{ours['p99_s'] * 1e3:.2f}", f"{theirs['p99_s'] * 1e3:.2f}"))
    rows.append(("max latency (ms)", f"{ours['max_s'] * 1e3:.2f}", f"{theirs['max_s'] * 1e3:.2f}"))
    rows.append(("CPU per scrape (ms)", f"{ours['cpu_s_per_scrape'] * 1e3:.2f}",
                 f"{theirs['cpu_s_per_scrape'] * 1e3:.2f}"))
    rows.append(("RSS (MiB)", f"{ours['rss_bytes'] / 2**20:.1f}", f"{theirs['rss_bytes'] / 2**20:.1f}"))
    rows.append(("peak RSS (MiB)", f"{ours['peak_rss_bytes'] / 2**20:.1f}", f"{theirs['peak_rss_bytes'] / 2**20:.1f}"))
    rows.append(("samples exposed", str(ours["samples"]), str(theirs["samples"])))
    rows.append(("body (bytes)", str(ours["body_bytes"]), str(theirs["body_bytes"])))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}" for r in rows]

    p99_ratio = ours["p99_s"] / theirs["p99_s"]
    goals = {
        "p99 <= 1.5x node_exporter": (p99_ratio <= 1.5, f"{p99_ratio:.2f}x"),
        "steady CPU < 0.5% of a core at 15 s": (steady["measured_core_pct"] < 0.5,
                                                f"{steady['measured_core_pct']:.3f}% measured over "
                                                f"{steady['window_s']:.0f}s with {steady['scrapes']} scrapes "
                                                f"({steady['extrapolated_core_pct']:.3f}% extrapolated)"),
        "RSS < 80 MB without eBPF": (ours["rss_bytes"] < 80e6, f"{ours['rss_bytes'] / 1e6:.1f} MB"),
    }
    results["goals"] = {k: {"met": met, "value": v} for k, (met, v) in goals.items()}
    print()
    print(f"scrape benchmark: {results['scrapes']} scrapes each, alternating; {results['cpus']} CPUs, "
          f"load {' '.join(results['loadavg_at_start'])} (shared machine: timings are noisy)")
    print("\n".join(lines))
    for k, (met, v) in goals.items():
        print(f"  {'MET ' if met else 'MISS'}  {k}: {v}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    # Sanity, not timing: both answered every scrape and the agent's numbers exist.
    assert len(ours) and ours["samples"] > 0 and theirs["samples"] > 0
