"""The worker supervisor against a real systemd 252 (Debian booted with
systemd-nspawn): the agent runs as the hardened infernode.service, supervises one
vLLM stand-in as infernode-worker@w0.service, and the tests look through
systemctl, /proc and the agent's HTTP API.

One container for the module (a boot costs seconds). Each test starts from the
state it needs, whatever the test before it left (`_serving`: the agent running
with CONFIG and w0 serving; `_fresh_streak`: the same under a newly started agent,
whose restart counters and backoff streak start at zero), so that it passes alone
and in any order.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from functools import partial

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.worker.dropin import DROPIN_NAME
from tests.conftest import need_root
from tests.harness.agent_root import PYPATH, agent_binds, install_agent

pytestmark = pytest.mark.integration

UNIT = "infernode-worker@w0.service"

CONFIG = f"""
server:
  listen: 127.0.0.1:9480
otlp:
  grpc_listen: 127.0.0.1:4317
workers:
  - name: w0
    gpus: [0]
    cpus: "1"
    numa_nodes: [0]
    memory_high: 768MiB
    memory_max: 1GiB
    port: 8000
    command: [/usr/bin/python3, /opt/infernode/src/tests/doubles/vllm_standin.py, serve, standin/tiny]
    args: [--itl, "0.05", --ttft, "0.05", --startup-phase, "Load weights=0.4"]
    environment:
      PYTHONPATH: {PYPATH}
      # Spans are not what this test checks: keep any failed export short.
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "1"
    shutdown_timeout: 15s
    drain_timeout: 30s
    deregister_delay: 3s
    health:
      interval: 1s
      timeout: 0.8s
      failures_before_restart: 3
      startup_grace: 10s
      generation_probe: /v1/completions
      generation_timeout: 2s
    backoff:
      initial: 1s
      factor: 3
      max: 9s
"""

@pytest.fixture(scope="module")
def box():
    need_root()
    if not shutil.which("systemd-nspawn"):
        pytest.skip("systemd-nspawn missing (make setup installs systemd-container)")
    from tests.harness.nspawn import booted

    with booted(prefix="worker", binds_ro=agent_binds(), setup=partial(install_agent, config_text=CONFIG)) as c:
        try:
            c.wait_for(lambda: c.show("infernode.service", "ActiveState")["ActiveState"] == "active", 60,
                       what="infernode.service active")
            yield c
        except BaseException:
            print(c.journal(lines=200))
            raise


def _workers(c) -> dict:
    res = c.run("/opt/infernode/bin/infernode", "workers", "--json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else {}


def _w0(c) -> dict:
    return next((w for w in _workers(c).get("workers", []) if w["worker"] == "w0"), {})


def _agent_metrics(c) -> dict[tuple[str, tuple], float]:
    text = c.run("curl", "-sf", "http://127.0.0.1:9480/metrics").stdout
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _wait_up(c, timeout: float = 60) -> dict:
    return c.wait_for(lambda: (w := _w0(c)) and w["up"] and w, timeout, what="w0 up")


def _agent_active(c) -> bool:
    return c.show("infernode.service", "ActiveState")["ActiveState"] == "active"


def _serving(c) -> dict:
    """The agent running with CONFIG and w0 serving, from whatever the last test
    left: another config, the agent stopped, w0 drained or refused."""
    if c.run("cat", "/etc/infernode/infernode.yaml").stdout != CONFIG:
        c.run("tee", "/etc/infernode/infernode.yaml", input=CONFIG)
        if _agent_active(c):
            c.run("systemctl", "reload", "infernode.service")
    if not _agent_active(c):
        c.run("systemctl", "start", "infernode.service")
        c.wait_for(lambda: _agent_active(c), 60, what="infernode.service active")
    if (w := _w0(c)) and w.get("phase") in ("drained", "refused"):
        c.run("curl", "-sf", "-X", "POST", "http://127.0.0.1:9480/workers/w0/start", check=False)
    if _workers(c).get("cordoned"):
        c.run("/opt/infernode/bin/infernode", "uncordon", check=False)
    return _wait_up(c)


def _fresh_streak(c) -> dict:
    """_serving, under an agent started anew: no restarts counted, no backoff streak."""
    _serving(c)
    c.run("systemctl", "restart", "infernode.service")
    c.wait_for(lambda: _agent_active(c), 60, what="infernode.service active")
    return _wait_up(c)


def test_units_verify_clean_and_security_exposure(box):
    res = box.run("systemd-analyze", "verify", "--man=no", "/etc/systemd/system/infernode.service",
                  "/etc/systemd/system/inference.slice", f"/etc/systemd/system/{UNIT.replace('w0', '')}",
                  UNIT, check=False)
    assert res.returncode == 0 and res.stdout.strip() == "" and res.stderr.strip() == "", res.stderr
    sec = box.run("systemd-analyze", "security", "--no-pager", "infernode.service", check=False)
    m = re.search(r"Overall exposure level for infernode\.service: (\d+\.\d+)", sec.stdout)
    assert m, sec.stdout + sec.stderr
    score = float(m.group(1))
    print(f"\nsystemd-analyze security infernode.service: {score}")
    assert score <= 5.0, sec.stdout


def test_worker_runs_pinned_in_inference_slice(box):
    w = _serving(box)
    props = box.show(UNIT, "Slice", "CPUAffinity", "NUMAPolicy", "NUMAMask", "MemoryMax", "MemoryHigh",
                     "Environment", "MainPID", "ExecStart", "TimeoutStopUSec", "KillMode", "LimitMEMLOCK")
    assert props["Slice"] == "inference.slice"
    assert props["CPUAffinity"] == "1"
    assert props["NUMAPolicy"] == "bind"
    assert props["NUMAMask"] == "0"
    assert props["MemoryMax"] == str(1 << 30)
    assert props["MemoryHigh"] == str(768 << 20)
    env = props["Environment"].split()
    assert "CUDA_VISIBLE_DEVICES=0" in env
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4317" in env
    assert "--otlp-traces-endpoint http://127.0.0.1:4317" in props["ExecStart"]
    assert "--shutdown-timeout 15" in props["ExecStart"]
    assert props["TimeoutStopUSec"] == "30s"  # > --shutdown-timeout
    assert props["KillMode"] == "mixed" and props["LimitMEMLOCK"] == "infinity"
    pid = int(props["MainPID"])
    assert pid == w["main_pid"] and pid > 0
    # CPUAffinity= and NUMAPolicy= are enforced inside nspawn (not cgroup-based).
    status = box.run("cat", f"/proc/{pid}/status").stdout
    assert re.search(r"^Cpus_allowed_list:\s+1$", status, re.M), status
    assert "bind:0" in box.run("cat", f"/proc/{pid}/numa_maps").stdout.split("\n")[0] or \
        re.search(r"^Mems_allowed_list:\s+0$", status, re.M)
    cgroup = box.run("cat", f"/proc/{pid}/cgroup").stdout
    assert "/inference.slice/infernode-worker@w0.service" in cgroup


def test_vllm_metrics_reexposed_with_worker_and_gpus_labels(box):
    _serving(box)
    box.run("curl", "-sf", "http://127.0.0.1:8000/v1/completions", "-H", "content-type: application/json",
            "-d", '{"model": "standin/tiny", "prompt": "hello world", "max_tokens": 3}')

    def reexposed():
        m = _agent_metrics(box)
        key = ("vllm:request_success_total",
               (("engine", "0"), ("finished_reason", "length"), ("gpus", "0"), ("model_name", "standin/tiny"),
                ("worker", "w0")))
        up = m.get(("infernode_worker_up", (("worker", "w0"),)))
        return m if m.get(key, 0) >= 1 and up == 1 else None

    m = box.wait_for(reexposed, 20, what="vllm:request_success_total re-exposed")
    assert m[("infernode_worker_scrape_up", (("worker", "w0"),))] == 1
    assert m[("infernode_worker_up", (("worker", "w0"),))] == 1
    assert m[("infernode_node_schedulable", (("reason", ""),))] == 1
    buckets = [k for k in m if k[0] == "vllm:time_to_first_token_seconds_bucket"]
    assert len(buckets) == 23  # vLLM's 22 bounds and +Inf
    assert all(("worker", "w0") in k[1] and ("gpus", "0") in k[1] for k in buckets)


def _ready(c) -> tuple[int, dict]:
    res = c.run("curl", "-s", "-w", "\\n%{http_code}", "http://127.0.0.1:9480/workers/w0/ready", check=False)
    body, _, code = res.stdout.rpartition("\n")
    return int(code or 0), (json.loads(body) if body.strip() else {})


def test_ready_names_vllm_version_model_and_startup_phases(box):
    if not _serving(box).get("startup_phases"):
        # A worker this agent adopted (started by an earlier agent): its start-up spans
        # went to that one. Start it anew through this agent.
        box.run("/opt/infernode/bin/infernode", "drain", "w0", "--timeout", "20", "--deregister-delay", "0",
                timeout=90)
        _serving(box)
        box.wait_for(lambda: _w0(box).get("startup_phases"), 20, what="w0's start-up phases")
    code, body = _ready(box)
    assert code == 200 and body == {"worker": "w0", "ready": True, "reason": "serving"}
    box.run("curl", "-sf", "http://127.0.0.1:8000/v1/completions", "-H", "content-type: application/json",
            "-d", '{"model": "standin/tiny", "prompt": "hello world", "max_tokens": 3}')

    def seen():
        m = _agent_metrics(box)
        phase = m.get(("infernode_worker_startup_phase_seconds", (("phase", "load_weights"), ("worker", "w0"))))
        e2e = m.get(("infernode_request_e2e_seconds_count", (("model_name", "standin/tiny"), ("worker", "w0"))))
        return m if phase is not None and e2e else None

    # Spans reach the agent within the drop-in's 500 ms batch delay.
    m = box.wait_for(seen, 20, what="start-up phase and request metrics of w0")
    assert m[("infernode_worker_startup_phase_seconds", (("phase", "load_weights"), ("worker", "w0")))] >= 0.35
    assert m[("infernode_worker_info", (("model_name", "standin/tiny"), ("vllm_version", "0.33.0"),
                                        ("worker", "w0")))] == 1
    assert m[("infernode_worker_ready", (("worker", "w0"),))] == 1
    assert m[("infernode_request_spans_total", (("worker", "w0"),))] >= 1
    # vLLM's own HTTP server metrics come through with the worker label.
    assert m[("http_requests_total", (("gpus", "0"), ("handler", "/v1/completions"), ("method", "POST"),
                                      ("status", "2xx"), ("worker", "w0")))] >= 1
    table = box.run("/opt/infernode/bin/infernode", "workers").stdout
    assert "0.33.0" in table and "load_weights" in table, table


def test_cordon_takes_the_node_out_of_rotation_keeps_the_worker_and_outlives_a_restart(box):
    _serving(box)
    worker_pid = box.show(UNIT, "MainPID")["MainPID"]
    res = box.run("/opt/infernode/bin/infernode", "cordon", "--reason", "tune bench")
    assert "node cordoned: tune bench" in res.stdout
    code, body = _ready(box)
    assert code == 503 and body["reason"] == "node cordoned: tune bench"
    data = _workers(box)
    assert data["schedulable"] is False and data["reason"] == "cordoned: tune bench" and data["cordoned"] is True
    m = _agent_metrics(box)
    assert m[("infernode_node_schedulable", (("reason", "cordoned"),))] == 0
    assert m[("infernode_worker_ready", (("worker", "w0"),))] == 0
    # Out of rotation, not stopped: the worker still serves what is sent to it directly.
    assert box.show(UNIT, "MainPID")["MainPID"] == worker_pid and _w0(box)["up"]
    box.run("curl", "-sf", "http://127.0.0.1:8000/v1/completions", "-H", "content-type: application/json",
            "-d", '{"model": "standin/tiny", "prompt": "hello", "max_tokens": 2}')
    # A restarted agent (or a rebooted node) is still cordoned.
    box.run("systemctl", "restart", "infernode.service")
    box.wait_for(lambda: _agent_active(box) and _w0(box).get("up"), 60, what="agent back, w0 adopted")
    assert _ready(box)[0] == 503
    res = box.run("/opt/infernode/bin/infernode", "uncordon")
    assert "node uncordoned: serving workers back in rotation" in res.stdout
    code, body = _ready(box)
    assert code == 200 and body["reason"] == "serving"
    assert _workers(box)["schedulable"] is True
    bad = box.run("/opt/infernode/bin/infernode", "cordon", "--reason", " ", check=False)
    assert bad.returncode == 2 and "a cordon needs a reason" in bad.stderr


def _reload_with_args(box, *extra: str) -> None:
    text = CONFIG.replace('--startup-phase, "Load weights=0.4"]',
                          '--startup-phase, "Load weights=0.4", ' + ", ".join(f'"{a}"' for a in extra) + "]")
    box.run("tee", "/etc/infernode/infernode.yaml", input=text)
    box.run("systemctl", "reload", "infernode.service")


def _restore(box) -> None:
    box.run("tee", "/etc/infernode/infernode.yaml", input=CONFIG)
    box.run("systemctl", "reload", "infernode.service")
    _wait_up(box)


def _refused_and_left_down(box, problem: str) -> dict:
    """Wait for w0 to be refused for `problem`, stopped, and not started again."""
    w = box.wait_for(lambda: (w := _w0(box)) and w["phase"] == "refused" and w, 30, what="w0 refused")
    assert problem in w["problem"], w
    box.wait_for(lambda: box.show(UNIT, "ActiveState")["ActiveState"] in ("inactive", "failed"), 30,
                 what="w0 stopped")
    restarts, pid = w["restarts"], box.show(UNIT, "ExecMainPID")["ExecMainPID"]
    time.sleep(4)  # four health intervals: no restart in a loop
    w = _w0(box)
    assert w["phase"] == "refused" and w["restarts"] == restarts
    assert box.show(UNIT, "ExecMainPID")["ExecMainPID"] == pid  # not started again
    assert box.show(UNIT, "ActiveState")["ActiveState"] in ("inactive", "failed")
    return w


def test_a_command_line_vllm_rejects_is_refused_not_restart_looped(box):
    _serving(box)
    # argparse exits 2, as vLLM's parser does for "--shutdown-timeout 2.5" or an unknown flag.
    _reload_with_args(box, "--max-num-seqs", "many")
    _refused_and_left_down(box, "exit status 2 at argument parsing")
    doctor = box.run("/opt/infernode/bin/infernode", "doctor", "--json", check=False)
    row = next(r for r in json.loads(doctor.stdout)["checks"] if r["subsystem"] == "worker" and r["item"] == "w0")
    assert row["status"] == "fail" and "argument parsing" in row["detail"]
    code, body = _ready(box)
    assert code == 503 and body["reason"].startswith("stopped: vLLM rejected its command line")
    _restore(box)


def test_a_vllm_older_than_the_drop_in_needs_is_refused(box):
    _serving(box)
    _reload_with_args(box, "--report-version", "0.17.1")
    _refused_and_left_down(box, "vLLM 0.17.1 is older than 0.18.0")
    _restore(box)


def _restart_gap(box, signal: str, who: str = "all") -> tuple[float, int]:
    """Send `signal`, return (seconds until a new main pid is up, new pid)."""
    old = int(box.show(UNIT, "MainPID")["MainPID"])
    t0 = time.monotonic()
    box.run("systemctl", "kill", f"--signal={signal}", f"--kill-who={who}", UNIT)
    new = box.wait_for(lambda: (p := int(box.show(UNIT, "MainPID")["MainPID"])) not in (0, old) and p, 60,
                       interval=0.05, what="a new main pid")
    return time.monotonic() - t0, new


def _restarts(box, reason: str) -> float:
    return _agent_metrics(box).get(("infernode_worker_restarts_total", (("reason", reason), ("worker", "w0"))), 0)


def test_kill9_restarted_with_growing_backoff(box):
    _fresh_streak(box)
    gap1, _ = _restart_gap(box, "SIGKILL")
    _wait_up(box)
    gap2, _ = _restart_gap(box, "SIGKILL")
    w = _wait_up(box)
    print(f"\nrestart after kill -9: {gap1:.2f}s, then {gap2:.2f}s (backoff 1s, x3)")
    assert gap1 >= 1.0 and gap2 >= 3.0, (gap1, gap2)
    assert gap2 > gap1
    assert _restarts(box, "exited") == 2
    assert w["restarts"] >= 2
    events = box.run("curl", "-sf", "http://127.0.0.1:9480/workers").stdout
    assert json.loads(events)["workers"][0]["active_state"] == "active"


def test_hung_health_endpoint_gets_worker_restarted(box):
    _fresh_streak(box)
    for _ in range(2):  # a streak of two restarts (1 s, then 3 s of backoff)
        _restart_gap(box, "SIGKILL")
        _wait_up(box)
    gap, _ = _restart_gap(box, "SIGUSR1", who="main")  # the stand-in's /health starts hanging
    _wait_up(box)
    print(f"\nrestart after /health hung: {gap:.2f}s")
    assert _restarts(box, "unhealthy") == 1
    # the streak continues across reasons: the third restart waits 9 s (capped)
    assert gap >= 9.0


def test_hung_engine_caught_by_generation_probe(box):
    _serving(box)
    before = _restarts(box, "generation_probe")
    unhealthy = _restarts(box, "unhealthy")
    # SIGUSR2: the stand-in's engine stops producing tokens while /health stays 200 (vllm#39863).
    gap, _ = _restart_gap(box, "SIGUSR2", who="main")
    _wait_up(box)
    print(f"\nrestart after the engine hung: {gap:.2f}s")
    assert _restarts(box, "generation_probe") == before + 1
    assert _restarts(box, "unhealthy") == unhealthy  # /health alone would not have noticed


def _agent_subsystems(c) -> list[str]:
    return json.loads(c.run("curl", "-sf", "http://127.0.0.1:9480/readyz").stdout)["subsystems"]


def test_agent_stop_within_budget_leaves_worker_serving_and_restart_adopts_it(box):
    _serving(box)
    worker_pid = int(box.show(UNIT, "MainPID")["MainPID"])
    cursor = box.cursor()  # this stop's lines only, not an earlier test's restarts
    t0 = time.monotonic()
    box.run("systemctl", "stop", "infernode.service")
    took = time.monotonic() - t0
    print(f"\nsystemctl stop infernode.service: {took:.2f}s")
    assert took < 5.0
    stopping = box.journal("infernode.service", lines=200, after=cursor)
    assert "Stopped infernode.service" in stopping  # the window holds this stop
    assert "abandoning" not in stopping
    # Stopping the agent is not stopping the workers.
    assert box.show(UNIT, "ActiveState")["ActiveState"] == "active"
    box.run("systemctl", "start", "infernode.service")
    _wait_up(box)
    assert int(box.show(UNIT, "MainPID")["MainPID"]) == worker_pid  # adopted, not restarted


def test_reload_removing_the_last_worker_stops_it_and_adding_it_back_starts_it(box):
    _serving(box)
    agent_pid = box.show("infernode.service", "MainPID")["MainPID"]
    dropin = f"/run/systemd/system/{UNIT}.d"
    without = CONFIG[:CONFIG.index("workers:")]
    box.run("tee", "/etc/infernode/infernode.yaml", input=without)
    box.run("systemctl", "reload", "infernode.service")
    box.wait_for(lambda: box.show(UNIT, "ActiveState")["ActiveState"] in ("inactive", "failed"), 30,
                 what="w0 stopped by the reload")
    box.wait_for(lambda: "worker" not in _agent_subsystems(box), 10, what="supervisor stopped")
    assert box.run("test", "-e", f"{dropin}/{DROPIN_NAME}", check=False).returncode != 0
    res = box.run("/opt/infernode/bin/infernode", "workers", "--json", check=False)
    assert res.returncode == 1 and "503" in res.stderr, res.stderr
    assert not any(k[0] == "infernode_worker_up" for k in _agent_metrics(box))

    box.run("tee", "/etc/infernode/infernode.yaml", input=CONFIG)
    box.run("systemctl", "reload", "infernode.service")
    _wait_up(box)
    assert "worker" in _agent_subsystems(box)
    assert _agent_metrics(box)[("infernode_worker_up", (("worker", "w0"),))] == 1
    # All of it without restarting the agent.
    assert box.show("infernode.service", "MainPID")["MainPID"] == agent_pid


def test_drain_takes_worker_out_of_rotation_before_sigterm(box):
    """vLLM keeps /health 200 while draining and answers new requests with empty
    finish_reason "abort" completions (vllm-0.33.md items 28-29): readiness must turn
    503 first, and SIGTERM wait deregister_delay (3 s here) after it."""
    _serving(box)
    box.sh("curl -sN http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' "
           "-d '{\"model\":\"standin/tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
           "\"max_tokens\":200,\"stream\":true}' > /run/stream.out 2>&1 &")
    box.wait_for(lambda: "chat.completion.chunk" in box.run("cat", "/run/stream.out", check=False).stdout, 10,
                 interval=0.05, what="first streamed chunk")
    # A balancer checking readiness every 250 ms, and, 5 s after it went 503, a client that ignores it.
    box.sh(f"cd /opt/infernode/src && PYTHONPATH={PYPATH} /usr/bin/python3 -m tests.integration.worker.inside_balancer "
           "--ready-url http://127.0.0.1:9480/workers/w0/ready --worker-url http://127.0.0.1:8000/v1/completions "
           "--rogue-after 5 > /run/balancer.out 2>&1 &")
    time.sleep(1.0)
    t0 = time.monotonic()
    res = box.run("/opt/infernode/bin/infernode", "drain", "w0", "--timeout", "25", timeout=90)
    took = time.monotonic() - t0
    assert "drained" in res.stdout and "stopped" in res.stdout, res.stdout + res.stderr
    out = box.run("cat", "/run/stream.out").stdout
    assert out.rstrip().endswith("data: [DONE]"), out[-300:]
    assert out.count('"delta":{"content":"tok') == 200  # the in-flight stream finished whole
    assert '"finish_reason":"abort"' not in out
    seen = box.wait_for(lambda: (t := box.run("cat", "/run/balancer.out", check=False).stdout.strip())
                        and t.startswith("{") and json.loads(t), 30, what="balancer's report")
    # The last start's SIGTERM (earlier restarts in this module logged theirs too).
    sigterm = float(re.findall(r"shutdown triggered at (\d+\.\d+)", box.journal(UNIT, lines=400))[-1])
    print(f"\ndrain: {len(seen['sent'])} requests routed, readiness 503 at +0, SIGTERM at "
          f"+{sigterm - seen['first_503']:.2f}s, drain took {took:.2f}s, rogue request: {seen['rogue']}")
    assert seen["first_503"] is not None and sigterm - seen["first_503"] >= 3.0 - 0.3
    assert len(seen["sent"]) >= 3
    # Nothing the balancer routed came back aborted...
    assert {reason for _, reason in seen["sent"]} == {"length"}
    # ...while a client that ignored readiness got what vLLM gives it: an empty abort.
    assert seen["rogue"] == "abort"
    # vLLM sends a span for that aborted request (no token, prefill about the uptime):
    # the agent counts it aborted and keeps it out of the request metrics.
    m = box.wait_for(lambda: (m := _agent_metrics(box)) and
                     m.get(("infernode_otlp_received_spans_total", (("kind", "aborted"),)), 0) >= 1 and m, 10,
                     what="the aborted request's span counted")
    prefill_sum = sum(v for k, v in m.items() if k[0] == "infernode_request_prefill_seconds_sum")
    assert prefill_sum < 60, prefill_sum
    assert box.show(UNIT, "ActiveState")["ActiveState"] in ("inactive", "failed")
    w = _w0(box)
    assert w["phase"] == "drained" and not w["up"] and not w["ready"]
    time.sleep(2)  # the supervisor must not restart a drained worker
    assert box.show(UNIT, "ActiveState")["ActiveState"] in ("inactive", "failed")


def test_fatal_xid_stops_worker_for_good_and_node_unschedulable(box):
    _serving(box)
    # The daemon's supervisor steps aside; the same supervisor code runs in a
    # foreground process that can be handed a GPU event.
    box.run("systemctl", "stop", "infernode.service")
    res = box.run("/usr/bin/python3", "-m", "tests.integration.worker.inside_gpu_fault",
                  env={"PYTHONPATH": PYPATH}, timeout=90, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen["was_up"], seen
    assert seen["phase"] == "gpu_fault" and seen["active_state"] in ("inactive", "failed"), seen
    assert seen["problem"] == "GPU fault: xid_79"
    assert seen["restarts"] == {}
    assert seen["schedulable"] == 0 and seen["worker_up"] == 0
    assert "worker_stop:xid_79" in seen["events"]
    assert box.show(UNIT, "ActiveState")["ActiveState"] in ("inactive", "failed")
