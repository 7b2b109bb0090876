"""Chaos scenario, issue 19 defect 5: a tuning drift is a state, and every request
inside it has it as context.

The real `infernode run` audits a profile of one real sysctl (vm.swappiness, wanted
at its current value) every 0.3 s and receives the spans of the vLLM stand-in (a
test double) serving requests one after another. The test changes the sysctl behind
the agent's back, sends requests, puts it back, and sends more. Before the fix a
drift was one instant at its detection, so only a request in flight at that moment
saw it (1 in 12 in the issue's trial); now it is an interval from detection to
repair. Every request sent while the drift lasted has it as context; none before or
after does, and none is given it as a cause.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import need_root
from tests.harness.agent import Agent, only_collectors, value
from tests.harness.prometheus import free_port
from tests.integration.tracing.chaos import STANDIN, explanation, post_stream, standin_env, wait_http

pytestmark = pytest.mark.integration

SWAPPINESS = Path("/proc/sys/vm/swappiness")
N = 4


def _in_state(agent: Agent) -> float | None:
    return value(agent.metrics(), "infernode_tuning_in_desired_state", tunable="vm.swappiness", target="system")


def _wait_state(agent: Agent, want: float, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _in_state(agent) != want:
        assert time.monotonic() < deadline, f"the agent did not see vm.swappiness in state {want}"
        time.sleep(0.1)


def test_every_request_inside_a_drift_has_it_as_context(tmp_path):
    need_root()
    original = SWAPPINESS.read_text().strip()
    drifted = "17" if original != "17" else "23"
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "one-sysctl.yaml").write_text(f"description: one real sysctl\ntunables:\n  vm.swappiness: {original}\n")
    http_port, grpc_port, vllm_port = free_port(), free_port(), free_port()
    config = {
        "collectors": only_collectors(),
        "otlp": {"http_listen": f"127.0.0.1:{http_port}", "grpc_listen": f"127.0.0.1:{grpc_port}"},
        "tuning": {"mode": "audit", "profile": "one-sysctl", "profile_dirs": [str(profiles)],
                   "verify_interval": "300ms"},
    }
    worker = None
    try:
        with Agent.start(tmp_path / "agent", config) as agent:
            worker = subprocess.Popen(
                [sys.executable, STANDIN, "--host", "127.0.0.1", "--port", str(vllm_port),
                 "--otlp-traces-endpoint", f"http://127.0.0.1:{http_port}/v1/traces", "--ttft", "0.02", "--itl", "0.01"],
                env=standin_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_http(f"http://127.0.0.1:{vllm_port}/health", 20)
            _wait_state(agent, 1.0)
            phases: dict[str, list[str]] = {"before": [], "during": [], "after": []}
            for phase in phases:
                if phase == "during":
                    SWAPPINESS.write_text(drifted)
                    _wait_state(agent, 0.0)
                elif phase == "after":
                    SWAPPINESS.write_text(original)
                    _wait_state(agent, 1.0)
                for _ in range(N):
                    t = uuid.uuid4().hex
                    post_stream(vllm_port, t, 10)
                    phases[phase].append(t)
            reqs = {phase: [explanation(agent, t) for t in ids] for phase, ids in phases.items()}
    finally:
        SWAPPINESS.write_text(original)
        if worker is not None:
            worker.kill()
            worker.wait()

    want = f"tuning drift: vm.swappiness is {drifted}, wanted {original}"
    report = {phase: [(r["context"], r["verdict"]) for r in rs] for phase, rs in reqs.items()}
    print(json.dumps(report, indent=1))
    assert all(want in r["context"] for r in reqs["during"]), report
    assert not any(c.startswith("tuning drift") for r in reqs["before"] + reqs["after"] for c in r["context"]), report
    assert not any(c["kind"] == "tuning_drift" for rs in reqs.values() for r in rs for c in r["causes"]), report
