"""What GET /workers/NAME/ready says in each phase (vLLM's /health cannot say it:
it stays 200 while vLLM drains, vllm-0.33.md item 29), and the vLLM version floor."""

import pytest

from agent.worker.backoff import BackoffPolicy
from agent.worker.policy import WorkerPhase, WorkerPolicy
from agent.worker.settings import WorkerSettings
from agent.worker.subsystem import WorkerRuntime, doctor_rows, phase_label
from agent.worker.vllm_version import parse_version, too_old


def _runtime(phase: WorkerPhase, up: bool, problem: str = "") -> WorkerRuntime:
    policy = WorkerPolicy(BackoffPolicy(1, 2, 10, 100), 3, 600)
    policy.phase = phase
    w = WorkerRuntime(WorkerSettings(name="w0", command=["vllm"]), policy, "infernode-worker@w0.service")
    w.up, w.last_problem = up, problem
    return w


@pytest.mark.parametrize("phase, up, ready, reason", [
    (WorkerPhase.RUNNING, True, True, "serving"),
    (WorkerPhase.RUNNING, False, False, "unhealthy: /health answered 503"),
    (WorkerPhase.STARTING, False, False, "starting: loading the model"),
    (WorkerPhase.DRAINING, True, False, "draining: taken out of rotation"),
    (WorkerPhase.DRAINED, False, False, "stopped: drained"),
    (WorkerPhase.BACKOFF, False, False, "down, restart pending: /health answered 503"),
    (WorkerPhase.REFUSED, False, False, "stopped: /health answered 503"),
    (WorkerPhase.GPU_FAULT, True, False, "stopped: /health answered 503"),
])
def test_ready_only_while_serving_and_healthy(phase, up, ready, reason):
    assert _runtime(phase, up, "/health answered 503").ready() == (ready, reason)


def test_starting_names_the_last_phase_done():
    w = _runtime(WorkerPhase.STARTING, False)
    w.startup_phases = {"load_weights": 41.0, "compile_graph": 12.5}
    assert w.ready() == (False, "starting: loading the model (last phase done: compile_graph)")


def test_doctor_rows_from_the_agents_status():
    rows = doctor_rows([_runtime(WorkerPhase.REFUSED, False, "vLLM 0.17.1 is older than 0.18.0").status(),
                        _runtime(WorkerPhase.RUNNING, True).status(), _runtime(WorkerPhase.STARTING, False).status()])
    assert [(r.status, r.detail) for r in rows] == [
        ("fail", "vLLM 0.17.1 is older than 0.18.0"), ("ok", "model unknown: serving"),
        ("warn", "starting: loading the model")]
    assert "systemctl reload infernode" in rows[0].fix


@pytest.mark.parametrize("text, parsed, old", [
    ("0.33.0", (0, 33, 0), False), ("0.18.0", (0, 18, 0), False), ("0.17.1", (0, 17, 1), True),
    ("0.19.0rc2.dev31+g1a2b3c", (0, 19, 0), False), ("0.18.1+cu128", (0, 18, 1), False), ("v0.9", (0, 9, 0), True),
    ("dev", None, False), ("", None, False),
])
def test_vllm_version_floor(text, parsed, old):
    assert parse_version(text) == parsed and too_old(text) is old


def test_phase_labels():
    assert phase_label("Download weights - HF") == "download_weights_hf"
    assert phase_label("Warmup (GPU)") == "warmup_gpu" and phase_label("!!!") == "unnamed"
