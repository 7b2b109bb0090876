from agent.worker.backoff import BackoffPolicy
from agent.worker.policy import Action, WorkerPhase, WorkerPolicy


def _policy(**kw):
    p = WorkerPolicy(BackoffPolicy(initial=2, factor=2, max=10, reset_after=100),
                     failures_before_restart=kw.get("n", 3), startup_grace=kw.get("grace", 30))
    p.started(0.0)
    return p


def test_exit_restarts_after_growing_delays():
    p = _policy()
    t = 0.0
    delays = []
    for _ in range(4):
        d = p.observe(t, active=False, healthy=None, gpu_fault=None)
        assert d.action is Action.NONE and d.reason == "exited"
        delays.append(d.delay)
        assert p.observe(t + d.delay - 0.1, active=False, healthy=None, gpu_fault=None).action is Action.NONE
        start = p.observe(t + d.delay, active=False, healthy=None, gpu_fault=None)
        assert start.action is Action.START and start.reason == "exited"
        t += d.delay
    assert delays == [2, 4, 8, 10]


def test_failures_during_startup_grace_are_not_counted():
    p = _policy(grace=30)
    for t in range(0, 29, 5):
        assert p.observe(float(t), active=True, healthy=False, gpu_fault=None).action is Action.NONE
    assert p.failures == 0
    # Past the grace, three consecutive failures restart it.
    actions = [p.observe(30.0 + i, active=True, healthy=False, gpu_fault=None) for i in range(3)]
    assert [a.action for a in actions] == [Action.NONE, Action.NONE, Action.STOP_FOR_RESTART]
    assert actions[-1].reason == "unhealthy" and actions[-1].delay == 2


def test_a_success_resets_the_failure_count():
    p = _policy(n=3)
    p.observe(1, active=True, healthy=True, gpu_fault=None)
    assert p.phase is WorkerPhase.RUNNING
    p.observe(2, active=True, healthy=False, gpu_fault=None)
    p.observe(3, active=True, healthy=False, gpu_fault=None)
    p.observe(4, active=True, healthy=True, gpu_fault=None)
    assert p.observe(5, active=True, healthy=False, gpu_fault=None).action is Action.NONE
    assert p.failures == 1


def test_healthy_running_worker_fails_without_grace():
    p = _policy(n=1, grace=1000)
    p.observe(1, active=True, healthy=True, gpu_fault=None)
    # Healthy once: it is RUNNING, so the startup grace no longer applies.
    assert p.observe(2, active=True, healthy=False, gpu_fault=None).action is Action.STOP_FOR_RESTART


def test_gpu_fault_stops_and_never_restarts():
    p = _policy()
    d = p.observe(1, active=True, healthy=True, gpu_fault="xid_79")
    assert d.action is Action.STOP and d.reason == "xid_79"
    for t in range(2, 100, 10):
        assert p.observe(float(t), active=False, healthy=None, gpu_fault=None).action is Action.NONE
    assert p.phase is WorkerPhase.GPU_FAULT


def test_drained_worker_is_left_alone():
    p = _policy()
    p.phase = WorkerPhase.DRAINED
    assert p.observe(1, active=False, healthy=None, gpu_fault=None).action is Action.NONE


def test_restart_reason_names_the_failing_probe():
    p = _policy(n=2)
    p.observe(1, active=True, healthy=True, gpu_fault=None)
    p.observe(2, active=True, healthy=False, gpu_fault=None, failure="generation_probe")
    d = p.observe(3, active=True, healthy=False, gpu_fault=None, failure="generation_probe")
    assert d.action is Action.STOP_FOR_RESTART and d.reason == "generation_probe"


def test_startup_progress_restarts_the_grace():
    # A worker reporting start-up phases (vLLM's start-up spans) is loading, not hung.
    p = _policy(grace=30, n=1)
    p.progress(25.0)
    assert p.observe(50.0, active=True, healthy=False, gpu_fault=None).action is Action.NONE
    assert p.observe(56.0, active=True, healthy=False, gpu_fault=None).action is Action.STOP_FOR_RESTART
    q = _policy(grace=30)
    q.observe(1, active=True, healthy=True, gpu_fault=None)
    q.progress(100.0)  # a late span after the worker came up changes nothing
    assert q.phase is WorkerPhase.RUNNING and q.started_at == 0.0


def test_refused_worker_is_left_alone():
    p = _policy()
    p.phase = WorkerPhase.REFUSED
    assert p.observe(1000.0, active=False, healthy=None, gpu_fault=None).action is Action.NONE
    assert p.phase is WorkerPhase.REFUSED
