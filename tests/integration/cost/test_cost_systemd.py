"""Cost per token end to end: a real agent under systemd in a booted Debian
(systemd-nspawn) with the NVML test double for its GPUs, supervising the vLLM
stand-in as infernode-worker@w0.service, under a scripted load the test counts
itself. `infernode cost --json` must agree with the load (tokens exact, GPU-seconds
within the booking granularity), and a real Prometheus, evaluating
dashboards/recording.yml over the agent's metrics, must give a cost per million
tokens within 5% of the figure from the test's own counts and the list prices."""

from __future__ import annotations

import json
import shutil
import time
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import REPO, need_root
from tests.harness import prometheus as promh
from tests.harness.agent_root import PYPATH, agent_binds, install_agent
from tests.harness.netns import host_link

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not promh.available(), reason="needs Debian prometheus (make setup installs it)"),
]

PRICE_GPU_HOUR = 3.6  # EUR: 0.001 a GPU-second
PRICE_KWH = 0.36  # EUR: 1e-7 a joule
GPU0_WATTS = 520.0  # the double's GPU 0 (h100_sxm_8x.json), its energy counter following it
GPU0_UTIL = 0.90
LOAD_SECONDS = 30
STEADY_AFTER = 4  # seconds of load before Prometheus starts scraping
WORKER = "infernode-worker@w0.service"


def _config(listen: str) -> str:
    return f"""
server:
  listen: {listen}
otlp:
  grpc_listen: 127.0.0.1:4317
  http_listen: 127.0.0.1:4318
collectors:
  ebpf:
    enabled: false
cost:
  currency: EUR
  gpu_hour_price:
    NVIDIA H100 80GB HBM3: {PRICE_GPU_HOUR}
  energy_kwh_price: {PRICE_KWH}
  interval: 1s
workers:
  - name: w0
    gpus: [0]
    cpus: "0"
    port: 8000
    command: [/usr/bin/python3, /opt/infernode/src/tests/doubles/vllm_standin.py, serve, standin/tiny]
    args: [--ttft, "0.02", --itl, "0.004"]
    environment:
      PYTHONPATH: {PYPATH}
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: grpc
    shutdown_timeout: 1s
    health:
      interval: 1s
      timeout: 0.8s
      startup_grace: 20s
"""


@pytest.fixture(scope="module")
def node():
    need_root()
    if not shutil.which("systemd-nspawn"):
        pytest.skip("systemd-nspawn missing (make setup installs systemd-container)")
    from tests.harness.nspawn import booted

    with host_link("cost", "10.249") as (ns, _, addr):
        setup = partial(install_agent, config_text=_config(f"{addr}:9480"))
        with booted(prefix="cost", binds_ro=agent_binds(), network_namespace=f"/run/netns/{ns}", setup=setup) as c:
            try:
                # The packaged unit steps aside for the same agent with the NVML double
                # put in place of pynvml (tests/integration/cost/inside_agent.py).
                c.run("systemctl", "stop", "infernode.service")
                c.run("systemd-run", "--unit=infernode-cost-agent", f"--setenv=PYTHONPATH={PYPATH}",
                      "/usr/bin/python3", "-m", "tests.integration.cost.inside_agent")
                yield c, addr
            except BaseException:
                print(c.journal(lines=200))
                raise


def _cost(c) -> dict:
    res = c.run("/opt/infernode/bin/infernode", "cost", "--json", "--since", "1h", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else {}


def _w0(report: dict) -> dict:
    return next((w for w in report.get("workers", []) if w["worker"] == "w0"), {})


def _usec(c, prop: str) -> float:
    return int(c.show(WORKER, prop)[prop]) / 1e6


def test_cost_report_and_recorded_cost_per_million_tokens_match_the_load(node, tmp_path: Path) -> None:
    c, addr = node
    c.wait_for(lambda: (r := c.run("/opt/infernode/bin/infernode", "workers", "--json", check=False)).returncode == 0
               and any(w["up"] for w in json.loads(r.stdout)["workers"]), 90, what="w0 up")
    held_from = _usec(c, "InactiveExitTimestampMonotonic")  # activating counts: the GPU is held
    t_load = time.time()
    c.run("systemd-run", "--unit=cost-load", "/usr/bin/python3", "/opt/infernode/src/tests/integration/cost/load.py",
          "http://127.0.0.1:8000/v1/completions", str(LOAD_SECONDS), "4", "16", "/tmp/load.json")
    time.sleep(STEADY_AFTER)
    with promh.Prometheus.start({"infernode": [f"{addr}:9480"]}, tmp_path / "prom",
                                rule_files=[REPO / "dashboards" / "recording.yml"]) as prom:
        prom.wait_for_target_up("infernode", timeout=30)
        time.sleep(LOAD_SECONDS - STEADY_AFTER - 6)  # well inside the load
        got = prom.query('infernode:worker_cost_per_million_tokens:1h{worker="w0"}')
        # The span of Prometheus's own samples is the window its increase() saw.
        raw = prom.query('infernode_request_completion_tokens_total{worker="w0"}[1h]')
    c.wait_for(lambda: c.show("cost-load.service", "ActiveState")["ActiveState"] in ("inactive", "failed"),
               LOAD_SECONDS + 30, what="load done")
    t_load_end = time.time()
    load = json.loads(c.run("cat", "/tmp/load.json").stdout)
    assert not load["errors"], load["errors"][:3]
    reqs = load["requests"]
    prompt, completion = sum(r["prompt"] for r in reqs), sum(r["completion"] for r in reqs)
    assert len(reqs) > 100

    # Prometheus: over its window the load was steady, so the recorded figure is the
    # cost rate over the token rate. Cost rate from the list prices: GPU 0 held
    # (0.001/s) and its 520 W (5.2e-5/s); token rate from the test's own counts.
    stamps = [float(ts) for ts, _ in raw[0]["values"]]
    first, last = stamps[0], stamps[-1]
    assert last - first >= 10, f"Prometheus saw {last - first:.1f} s of the load"
    window = [r for r in reqs if first <= r["end"] <= last]
    token_rate = sum(r["prompt"] + r["completion"] for r in window) / (last - first)
    cost_rate = PRICE_GPU_HOUR / 3600 + GPU0_WATTS * PRICE_KWH / 3.6e6
    expected = cost_rate / token_rate * 1e6
    assert got, "the recording rule produced nothing"
    value = float(got[0]["value"][1])
    print(f"\nrecorded cost per million tokens {value:.4f} EUR, from the test's counts {expected:.4f} EUR "
          f"({(value / expected - 1) * 100:+.2f}%), {token_rate:.0f} tokens/s")
    assert value == pytest.approx(expected, rel=0.05), (value, expected)

    # The agent's own report: every token of the load, once its last spans arrived.
    asked: list[tuple[float, float]] = []

    def timed_cost() -> dict:
        t0 = time.monotonic()
        r = _cost(c)
        asked.append((t0, time.monotonic()))
        return r

    report = c.wait_for(lambda: (r := timed_cost()) and _w0(r).get("requests") == len(reqs) and r, 30,
                        what="every request's spans booked")
    ask_start, ask_end = asked[-1]
    w = _w0(report)
    assert (w["prompt_tokens"], w["completion_tokens"]) == (prompt, completion)
    assert report["currency"] == "EUR" and w["model_name"] == "standin/tiny"
    held = w["gpu_hours"] * 3600
    print(f"GPU-seconds held {held:.2f}, since the unit started {ask_start - held_from:.2f} to "
          f"{ask_end - held_from:.2f} (while `infernode cost` ran); busy {w['busy_share']:.3f}; "
          f"{len(reqs)} requests, {prompt}+{completion} tokens exact")
    # Booked every second (cost.interval) from the unit's start as systemd gives it: the
    # report holds what was booked by the time the agent answered.
    assert ask_start - held_from - 1.5 <= held <= ask_end - held_from + 0.1, "one GPU, held since the unit started"
    assert w["busy_share"] == pytest.approx(GPU0_UTIL, abs=0.02)
    idle = w["idle_share"] * held
    before, after = t_load - (time.time() - time.monotonic() + held_from), time.time() - t_load_end
    assert after - 3 <= idle <= before + after + 3, (idle, before, after)
    assert w["energy_kwh"] * 3.6e6 == pytest.approx(GPU0_WATTS * held, rel=0.05)
    assert w["cost"] == pytest.approx(w["gpu_hours"] * PRICE_GPU_HOUR + w["energy_kwh"] * PRICE_KWH, rel=1e-6)
    assert w["cost_per_million_tokens"] == pytest.approx(w["cost"] / (prompt + completion) * 1e6, rel=1e-6)
    table = c.run("/opt/infernode/bin/infernode", "cost", "--since", "1h").stdout
    assert "w0" in table and "EUR / M TOKENS" in table
    doctor = c.run("/opt/infernode/bin/infernode", "doctor", check=False).stdout
    assert any(line.split()[:3] == ["cost", "prices", "OK"] for line in doctor.splitlines()), doctor
