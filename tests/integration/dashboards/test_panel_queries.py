"""Every dashboard panel's queries run against a real Prometheus that scraped real
agents, and return data, except panels marked as needing real hardware (those
must still run without error).

What Prometheus scrapes (1 s interval):
  node  the agent as infernode.service in a booted Debian (systemd-nspawn) that
        supervises one vLLM stand-in worker as infernode-worker@w0.service (worker
        health, re-exposed vllm:*, its llm_request spans into the agent's OTLP
        receiver, cgroup of the inference slice, tuning in audit mode, bootstrap
        against the example manifest). The container has its own network
        namespace joined to the host by a veth pair, so nothing binds host ports.
  host  an `infernode run` on this host with the eBPF and cgroup collectors (real
        tracepoints); its inference slice is a test slice `dash<id>.slice` (cpu,
        cpuacct, blkio and memory v1 cgroups) holding a small load process, since
        nspawn does not delegate this host's v1 controllers to the container.
  gpu   the GPU collector over the NVML test double (tests/doubles/fake_pynvml.py,
        an H100 scenario with XIDs), run in this process and served by a small HTTP
        server: a daemon subprocess cannot load the double without a product hook.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import need_root
from tests.harness import prometheus as promh
from tests.harness.agent_root import PYPATH, agent_binds, install_agent
from tests.harness.blkio import count_io
from tests.harness.grafana import alert_rules, concrete, panels
from tests.harness.netns import host_link
from tests.harness.promql import metric_names

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not promh.available(), reason="needs Debian prometheus (make setup installs it)"),
]

UNIT = "infernode-worker@w0.service"
WINDOW = "10s"  # stands in for Grafana's $__rate_interval at a 1 s scrape interval



def _config(listen: str) -> str:
    return f"""
server:
  listen: {listen}
otlp:
  grpc_listen: 127.0.0.1:4317
  http_listen: 127.0.0.1:4318
explain:
  slo:
    ttft: 10ms   # the stand-in answers in 20 ms: every request counts as slow
bootstrap:
  manifest: /opt/infernode/src/examples/manifest.yaml
cost:
  default_gpu_hour_price: 2.49
  interval: 1s
collectors:
  ebpf:
    enabled: false
workers:
  - name: w0
    gpus: [0]
    cpus: "0"
    port: 8000
    command: [/usr/bin/python3, /opt/infernode/src/tests/doubles/vllm_standin.py, serve, standin/tiny]
    # One request at a time in the batch: the pairs the traffic sends queue, so the
    # engine's own causes (queueing) have latency to show on the requests dashboard.
    args: [--ttft, "0.02", --itl, "0.005", --scheduler, batched, --max-num-seqs, "1"]
    environment:
      PYTHONPATH: {PYPATH}
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: grpc
    shutdown_timeout: 1s
    health:
      interval: 1s
      timeout: 0.8s
      startup_grace: 20s
    backoff:
      initial: 0.5s
"""


def _install(root: Path, listen: str) -> None:
    install_agent(root, _config(listen))


@contextlib.contextmanager
def _gpu_exporter() -> Iterator[str]:
    """The GPU collector over the NVML double, served at /metrics on a free port."""
    from agent.collector import CollectorContext
    from agent.events import EventStore
    from agent.exposition import render
    from agent.paths import Paths
    from agent.plugins import build_catalog
    from agent.runtime import CollectorRuntime
    from collectors.gpu.collector import GpuCollector, GpuSettings
    from tests.doubles.fake_pynvml import SCENARIOS, FakePynvml

    scenario = json.loads((SCENARIOS / "xid.json").read_text())
    # A compute process on GPU 0 that exists on this host: this test process.
    scenario["devices"][0]["processes"] = [{"pid": os.getpid(), "used_bytes": 4 << 30}]
    scenario["devices"][1]["clock_event_reasons"] = 0x4  # sw_power_cap: a throttle reason to show
    fake = FakePynvml(scenario)
    settings = GpuSettings(poll_interval=1, slow_poll_interval=1, max_age=30, event_wait_timeout=0.05)
    ctx = CollectorContext(paths=Paths("/"), events=EventStore(), settings=settings,
                           log=logging.getLogger("test.dashboards.gpu"))
    catalog = build_catalog()
    runtime = CollectorRuntime([GpuCollector(ctx, nvml=fake)], catalog, {"gpu": 5.0}, default_timeout=5.0)
    runtime.start()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body, ctype = render(runtime.scrape(), catalog)
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        runtime.scrape()
        fake.advance()  # XID 79 on GPU 0, XID 13 on GPU 1
        fake.advance()  # another XID 13, a double-bit ECC event
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        runtime.stop()


@contextlib.contextmanager
def _traffic(box, scratch: Path) -> Iterator[None]:
    """Completions against the worker, every third time two at once (the second
    queues behind the first), and some disk writes for block I/O latency, until the
    test ends."""
    stop = threading.Event()

    def loop() -> None:
        n = 0
        while not stop.is_set():
            body = json.dumps({"model": "standin/tiny", "prompt": "hello " * (1 + n % 7), "max_tokens": 2 + n % 6})
            curl = ("curl -s -o /dev/null http://127.0.0.1:8000/v1/completions "
                    f"-H 'content-type: application/json' -d '{body}'")
            box.sh(f"{curl} & {curl}; wait" if n % 3 == 0 else curl, check=False, timeout=10)
            with open(scratch / "io", "wb") as f:
                f.write(os.urandom(1 << 16))
                f.flush()
                os.fsync(f.fileno())
            n += 1
            stop.wait(0.2)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=15)


LOAD = r"""
import mmap, os, sys, time
buf = mmap.mmap(-1, 1 << 16)  # page-aligned, as O_DIRECT wants
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
while True:
    t = time.monotonic()
    while time.monotonic() - t < 0.02:
        pass
    os.pwrite(fd, buf, 0)
    time.sleep(0.03)
"""


@contextlib.contextmanager
def _test_slice(scratch: Path) -> Iterator[str]:
    """A slice with one unit running LOAD, in this host's v1 controllers: its name.
    The load process joins cpu, cpuacct and blkio (a CFS quota so throttling
    counts); the memory cgroups stay empty (the test's own memory cgroup keeps it)."""
    name = f"dash{uuid.uuid4().hex[:8]}.slice"
    made: list[Path] = []
    proc = None
    try:
        for ctrl in ("cpu", "cpuacct", "blkio", "memory"):
            root = Path("/sys/fs/cgroup") / ctrl
            if not root.is_dir() or root.is_symlink():
                continue
            for d in (root / name, root / name / "dashload.service"):
                d.mkdir()
                made.append(d)
        (Path("/sys/fs/cgroup/cpu") / name / "dashload.service" / "cpu.cfs_quota_us").write_text("30000")
        (Path("/sys/fs/cgroup/memory") / name / "dashload.service" / "memory.limit_in_bytes").write_text(str(256 << 20))
        blkio = Path("/sys/fs/cgroup/blkio") / name / "dashload.service"
        if blkio.is_dir():
            count_io(blkio, scratch)
        proc = subprocess.Popen([sys.executable, "-c", LOAD, str(scratch / "direct-io")])
        for ctrl in ("cpu", "cpuacct", "blkio"):
            unit = Path("/sys/fs/cgroup") / ctrl / name / "dashload.service"
            if unit.is_dir():
                (unit / "cgroup.procs").write_text(str(proc.pid))
        yield name
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        for d in reversed(made):
            for _ in range(50):  # a killed task leaves its cgroup asynchronously
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def _merged() -> bool:
    from agent.plugins import build_catalog

    catalog = build_catalog()
    return all(catalog.knows(n) for p in panels() for e in p.exprs for n in metric_names(e))


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    need_root()
    if not shutil.which("systemd-nspawn"):
        pytest.skip("systemd-nspawn missing (make setup installs systemd-container)")
    if not _merged():
        pytest.skip("dashboards reference metrics of branches not merged yet "
                    "(test_every_metric_is_in_the_catalog names them)")
    from tests.harness.agent import Agent, only_collectors
    from tests.harness.nspawn import booted

    tmp = tmp_path_factory.mktemp("dashboards")
    binds = agent_binds()
    with contextlib.ExitStack() as stack:
        ns, _, addr = stack.enter_context(host_link("dash", "10.252"))
        box = stack.enter_context(booted(prefix="dash", binds_ro=binds, network_namespace=f"/run/netns/{ns}",
                                         setup=partial(_install, listen=f"{addr}:9480")))
        slice_name = stack.enter_context(_test_slice(tmp))
        collectors = only_collectors("ebpf", "cgroup")
        collectors["ebpf"].update({"inference_cgroups": [slice_name]})
        collectors["cgroup"].update({"slice": slice_name})
        host_config = {
            "collectors": collectors,
            "otlp": {"grpc_listen": f"127.0.0.1:{promh.free_port()}", "http_listen": f"127.0.0.1:{promh.free_port()}"},
        }
        host = stack.enter_context(Agent.start(tmp / "host-agent", host_config))
        gpu = stack.enter_context(_gpu_exporter())
        try:
            box.wait_for(lambda: box.show(UNIT, "ActiveState")["ActiveState"] == "active", 60, what=f"{UNIT} active")
            # One crash, so the restarts panel has a reason to show.
            box.run("systemctl", "kill", "--signal=SIGKILL", "--kill-who=main", UNIT)
            p = stack.enter_context(promh.Prometheus.start(
                {"node": [f"{addr}:9480"], "host": [f"127.0.0.1:{host.port}"], "gpu": [gpu]}, tmp / "prom",
                extra_flags=["--enable-feature=exemplar-storage"]))
            stack.enter_context(_traffic(box, tmp))
            for job in ("node", "host", "gpu"):
                p.wait_for_target_up(job, timeout=60)
            p.wait_for_series('infernode_worker_up{worker="w0"} == 1', timeout=60)
            p.wait_for_series("infernode_request_ttft_seconds_count > 0", timeout=60)
            p.wait_for_series('infernode_request_cause_seconds_total{kind="queueing"} > 0', timeout=60)
            p.wait_for_series("infernode_gpu_xid_errors_total > 0", timeout=30)
            p.wait_for_series('infernode_worker_restarts_total{reason="exited"} > 0', timeout=30)
            time.sleep(12)  # a few scrapes of traffic inside every rate window
            yield p
        except BaseException:
            print(box.journal(lines=150))
            print(host.log_path.read_text()[-3000:] if host.log_path.exists() else "")
            raise


def _has_data(result: list[dict]) -> bool:
    return any(not math.isnan(float(v)) for s in result for _, v in s["values"])


ALL = list(panels())


@pytest.mark.parametrize("panel", ALL, ids=[str(p) for p in ALL])
def test_panel_queries_run_and_return_data(prom, panel):
    end = time.time()
    for expr in panel.exprs:
        q = concrete(expr, WINDOW)
        result = prom.api("query_range", {"query": q, "start": end - 60, "end": end, "step": "2"})["result"]
        if panel.needs_real_hardware:
            continue  # the query ran without error; data is not promised off real hardware
        assert _has_data(result), f"{panel}: no data for {q}"


def test_request_panels_link_to_traces_through_exemplars(prom):
    end = time.time()
    series = prom.query_exemplars("infernode_request_ttft_seconds_bucket", end - 300, end + 5)
    trace_ids = {ex["labels"].get("trace_id") for s in series for ex in s["exemplars"]}
    assert trace_ids - {None}, series
    assert all(len(t) == 32 for t in trace_ids)


@pytest.mark.parametrize("rule", alert_rules(), ids=[r["alert"] for r in alert_rules()])
def test_alert_expressions_evaluate(prom, rule):
    prom.query(rule["expr"])  # raises on a PromQL error
