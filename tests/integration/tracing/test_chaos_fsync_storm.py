"""Chaos scenario (2), issue 8: an fsync storm on the device the worker reads from.

The real `infernode run` (eBPF block I/O and run-queue programs on, OTLP receiver on)
and two vLLM stand-ins in inference cgroups: "reader" reads 1 MiB of its "weights"
with O_DIRECT during each request's prefill (what a real engine does when evicted
weights page back in, or a LoRA adapter or offloaded KV cache is loaded), "compute"
reads nothing. The file lives on a real ext4 on a real loop device; the medium under
the loop device is the slow-disk double (tests/doubles/slow_disk.py): one queue,
served in order, so a writer's backlog delays the reads behind it, as on a real disk.
This VM's own virtual disk cannot be used: reads during a storm there were barely
slower than quiet ones, so no honest threshold could tell them apart.

Phase A: quiet. Phase B: a separate process (a backup job) rewrites 4 MiB on the same
file system and fsyncs it, over and over. Phase C: the storm is over. The agent's own
explanations (GET /debug/explain) must name an I/O stall on that loop device for
every reader request of phase B, as its top cause, with the extra time it explains
within ±30% of the extra latency measured; the compute worker's requests, served
during the same storm, must name no I/O stall on that device at all; and reader
requests before and after the storm carry only their own quiet reads (the honest
baseline: a quiet request does read 1 MiB from the device), far below any storm one.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

import pytest

from tests.harness.agent import Agent
from tests.harness.prometheus import free_port
from tests.harness.slowdisk import fsync_storm, slow_disk, stop
from tests.integration.tracing.chaos import (
    STANDIN,
    agent_config,
    cause_s,
    cpu_cgroups,
    explanation,
    in_cgroup,
    post_stream,
    standin_env,
    wait_http,
    wait_program,
)

pytestmark = pytest.mark.integration

WORKER_CPU = os.cpu_count() - 1
N = 6  # requests per worker per phase
TOKENS = 10
READ_BYTES = 1 << 20  # 16 O_DIRECT reads of 64 KiB per request
WEIGHTS_MIB = 16


def _io_on(req: dict, device: str) -> float:
    return cause_s(req, "io_stall", device)


def _standin(cgroup, port: int, otlp_port: int, *extra: str) -> subprocess.Popen:
    env = standin_env()
    return subprocess.Popen(
        in_cgroup(cgroup, "taskset", "-c", str(WORKER_CPU), sys.executable, STANDIN,
                  "--host", "127.0.0.1", "--port", str(port),
                  "--otlp-traces-endpoint", f"http://127.0.0.1:{otlp_port}/v1/traces",
                  "--ttft", "0.02", "--itl", "0.01", *extra),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _phase(reader_port: int, compute_port: int) -> tuple[list[str], list[str]]:
    """N requests to each worker, alternating; returns their trace ids."""
    reads, computes = [], []
    for _ in range(N):
        reads.append(uuid.uuid4().hex)
        post_stream(reader_port, reads[-1], TOKENS)
        computes.append(uuid.uuid4().hex)
        post_stream(compute_port, computes[-1], TOKENS)
    return reads, computes


def test_fsync_storm_is_named_for_the_requests_that_read_during_it(tmp_path):
    with cpu_cgroups("reader", "compute", shares=10240) as (reader_cg, compute_cg), \
            slow_disk(tmp_path / "disk") as disk:
        weights = disk.mountpoint / "weights.bin"
        with open(weights, "wb") as f:
            for _ in range(WEIGHTS_MIB):
                f.write(os.urandom(1 << 20))
            f.flush()
            os.fsync(f.fileno())
        http_port, grpc_port = free_port(), free_port()
        reader_port, compute_port = free_port(), free_port()
        config = agent_config([reader_cg, compute_cg], ("runqueue", "blockio"), http_port, grpc_port)
        procs: list[subprocess.Popen] = []
        try:
            with Agent.start(tmp_path / "agent", config) as agent:
                wait_program(agent, "blockio")
                procs.append(_standin(reader_cg, reader_port, http_port, "--read-file", str(weights),
                                      "--read-bytes", str(READ_BYTES)))
                procs.append(_standin(compute_cg, compute_port, http_port))
                for port in (reader_port, compute_port):
                    wait_http(f"http://127.0.0.1:{port}/health", 20)
                time.sleep(1.2)  # one scope refresh after start-up: the workers' threads are in the map
                for port in (reader_port, compute_port):
                    post_stream(port, uuid.uuid4().hex, TOKENS)  # warm-up (imports, first connection)

                quiet_ids, quiet_compute_ids = _phase(reader_port, compute_port)
                storm = fsync_storm(disk.mountpoint, mib_per_fsync=4)
                os.sched_setaffinity(storm.pid, {0})  # off the workers' CPU: contention for the disk only
                time.sleep(0.5)
                loud_ids, loud_compute_ids = _phase(reader_port, compute_port)
                stop(storm)
                time.sleep(1.0)  # the double works off the storm's backlog
                after_ids, after_compute_ids = _phase(reader_port, compute_port)

                explain = {t: explanation(agent, t) for t in (
                    quiet_ids + quiet_compute_ids + loud_ids + loud_compute_ids + after_ids + after_compute_ids)}
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait()

    dev = disk.device
    quiet = [explain[t] for t in quiet_ids]
    loud = [explain[t] for t in loud_ids]
    after = [explain[t] for t in after_ids]
    computes = [explain[t] for t in quiet_compute_ids + loud_compute_ids + after_compute_ids]
    base = statistics.median(r["latency_seconds"]["e2e"] for r in quiet)
    base_io = statistics.median(_io_on(r, dev) for r in quiet)  # the request's own quiet reads
    extra = [r["latency_seconds"]["e2e"] - base for r in loud]
    explained = [_io_on(r, dev) - base_io for r in loud]
    report = {
        "device": dev, "baseline_e2e": base, "baseline_io": base_io,
        "quiet_io": [_io_on(r, dev) for r in quiet], "after_io": [_io_on(r, dev) for r in after],
        "loud_e2e": [r["latency_seconds"]["e2e"] for r in loud], "extra": extra, "explained": explained,
        "ratio": [e / x if x else None for e, x in zip(explained, extra, strict=False)],
        "loud_verdicts": [r["verdict"] for r in loud],
        "loud_causes": [[(c["kind"], c["explained_seconds"], c["phases"]) for c in r["causes"]] for r in loud],
        "compute_io": [_io_on(r, dev) for r in computes],
        "compute_runqueue": [cause_s(r, "runqueue_wait") for r in computes],
        "loud_compute_verdicts": [explain[t]["verdict"] for t in loud_compute_ids],
    }
    print(json.dumps(report, indent=1))

    assert statistics.median(extra) > 5 * max(base_io, 0.01), report  # the storm really slowed the reads
    for r, x, e in zip(loud, extra, explained, strict=False):
        top = r["causes"][0]
        assert top["kind"] == "io_stall" and top["detail"]["device"] == dev, (r["verdict"], report)
        assert "read" in top["detail"]["ops"], top
        # The slowest reads were outliers too, matched to this worker by their submitter.
        assert top["detail"].get("slowest_seconds", 0) >= 0.05, top
        assert f"on {dev} (read" in r["verdict"], r["verdict"]
        assert 0.7 * x <= e <= 1.3 * x, report
    assert 0.8 * sum(extra) <= sum(explained) <= 1.2 * sum(extra), report
    # Before and after: the quiet reads only, far below any request that read during the storm.
    loud_io = [_io_on(r, dev) for r in loud]
    for r in quiet + after:
        assert _io_on(r, dev) < 0.2 * min(loud_io), (r["verdict"], report)
    # The other worker shared the node and the storm, but not the reads: no I/O stall on it.
    for r in computes:
        assert _io_on(r, dev) == 0.0, (r["verdict"], report)
        assert dev not in r["verdict"], r["verdict"]
