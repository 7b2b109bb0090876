import pytest

from agent.events import Event
from agent.tracing.correlate import explain
from agent.tracing.ranking import RequestScope, concerns, phases, union_ns

from .spanfactory import T0, request

MS = 1_000_000
CG = "/inference.slice/infernode-worker@llama.service"
SCOPE = RequestScope(worker="llama", cgroup=CG, gpus=("GPU-a",), pids=frozenset({4242, 4243}), port=8000)


def rq(start_ms: float, end_ms: float, cpu: int = 3, holder: int = 777, comm: str = "hog", tid: int = 4242) -> Event:
    return Event(T0 + int(start_ms * MS), T0 + int(end_ms * MS), "runqueue_wait", f"cgroup:{CG}",
                 (end_ms - start_ms) / 1000, {"tid": tid, "cpu": cpu, "holder_pid": holder, "holder_comm": comm})


def test_phases_follow_vllm_timestamps():
    # arrival 0; queued at 20 ms (frontend), scheduled 70 ms, first token 400 ms, last 1000 ms, end 1010 ms
    r = request(ttft=0.4, queue=0.05, prefill=0.33, decode=0.6, e2e=1.01)
    got = {p.name: ((p.start_ns - T0) / MS, (p.end_ns - T0) / MS) for p in phases(r)}
    assert got["frontend"] == pytest.approx((0, 20))
    assert got["queue"] == pytest.approx((20, 70))
    assert got["prefill"] == pytest.approx((70, 400))
    assert got["decode"] == pytest.approx((400, 1000))
    assert got["finish"] == pytest.approx((1000, 1010))


def test_phases_clamped_when_attributes_disagree():
    # queue + prefill longer than TTFT, decode past e2e: phases stay inside the request, in order
    r = request(ttft=0.1, queue=0.5, prefill=0.5, decode=5.0, e2e=1.0)
    ps = phases(r)
    assert ps[0].start_ns == r.start_ns and ps[-1].end_ns == r.start_ns + 1_000_000_000
    for a, b in zip(ps, ps[1:], strict=False):
        assert a.end_ns == b.start_ns and a.start_ns <= a.end_ns


def test_union_merges_overlaps_and_keeps_gaps():
    assert union_ns([(0, 10), (5, 20), (30, 40), (35, 36)]) == 30
    assert union_ns([]) == 0


def test_overlap_is_clipped_to_the_request():
    r = request(ttft=0.4, queue=0.05, prefill=0.33, decode=0.6, e2e=1.01)
    # starts 100 ms before arrival, ends 50 ms after it: only 50 ms falls inside
    ex = explain(r, SCOPE, [rq(-100, 50)])
    assert len(ex.causes) == 1
    assert ex.causes[0].explained_s == pytest.approx(0.050)
    assert ex.causes[0].share == pytest.approx(0.050 / 1.01)


def test_concurrent_waits_count_once_not_per_thread():
    r = request(ttft=0.4, queue=0.05, prefill=0.33, decode=0.6, e2e=1.01)
    evs = [rq(100, 200, tid=t) for t in (1, 2, 3, 4)]  # four threads waiting at once
    ex = explain(r, SCOPE, evs)
    assert ex.causes[0].explained_s == pytest.approx(0.100)
    assert ex.causes[0].events == 4
    assert ex.explained_s == pytest.approx(0.100)


def test_a_wait_behind_the_idle_task_is_a_wake_up_delay_not_a_held_cpu():
    r = request(ttft=0.42, queue=0.02, prefill=0.38, decode=0.6, e2e=1.03)
    ex = explain(r, SCOPE, [rq(30, 210, cpu=3, holder=0, comm="swapper/3")])
    c = ex.causes[0]
    assert c.text == "run-queue wait 180 ms of 420 ms TTFT on CPU 3, the CPU was idle: a wake-up delay, not a busy CPU"
    assert c.detail["wakeup_delay"] is True and "holder_pid" not in c.detail


def test_causes_ranked_by_explained_time_with_text():
    r = request(ttft=0.42, queue=0.02, prefill=0.38, decode=0.6, e2e=1.03)
    evs = [
        rq(30, 210, cpu=3, holder=4242, comm="kworker"),  # 180 ms, all before the first token
        Event(T0 + 500 * MS, T0 + 560 * MS, "gpu_throttle", "gpu:GPU-a", 0.06, {"reason": "HwThermalSlowdown"}),
        rq(600, 610, cpu=5),
    ]
    ex = explain(r, SCOPE, evs)
    kinds = [(c.kind, round(c.explained_s, 3)) for c in ex.causes]
    assert kinds == [("runqueue_wait", 0.18), ("gpu_throttle", 0.06), ("runqueue_wait", 0.01)]
    assert ex.causes[0].text == "run-queue wait 180 ms of 420 ms TTFT on CPU 3, CPU held by thread 4242 (kworker)"
    assert ex.causes[1].text == "GPU throttled 60.0 ms of 600 ms decode (HwThermalSlowdown) on GPU-a"
    # With the holder's process known (procfs, when the event was decoded), it is named too.
    held = rq(30, 210, cpu=3, holder=4243, comm="hog-worker")
    held.attributes.update({"holder_process_pid": 4200, "holder_process_comm": "hog"})
    text = explain(r, SCOPE, [held]).causes[0].text
    assert text.endswith("CPU held by thread 4243 (hog-worker) of process 4200 (hog)"), text
    held.attributes.update({"holder_process_pid": 4243, "holder_process_comm": "hog-worker"})  # its main thread
    text = explain(r, SCOPE, [held]).causes[0].text
    assert text.endswith("CPU held by thread 4243 (hog-worker) of process 4243"), text
    assert ex.causes[0].phases == pytest.approx({"queue": 0.01, "prefill": 0.17})
    assert ex.verdict == ex.causes[0].text
    assert ex.explained_s == pytest.approx(0.25)


def test_cause_spanning_ttft_and_decode_is_stated_against_e2e():
    r = request(ttft=0.4, queue=0.05, prefill=0.33, decode=0.6, e2e=1.01)
    ex = explain(r, SCOPE, [rq(300, 500)])
    assert "of 1010 ms e2e" in ex.causes[0].text


def test_holder_is_the_one_holding_the_cpu_longest():
    r = request()
    ex = explain(r, SCOPE, [rq(10, 20, holder=1, comm="a"), rq(30, 90, holder=2, comm="b")])
    assert ex.causes[0].detail["holder_pid"] == 2
    assert "thread 2 (b)" in ex.causes[0].text


def test_no_events_is_no_known_cause():
    ex = explain(request(), SCOPE, [])
    assert ex.causes == [] and ex.verdict == "no known cause" and ex.explained_s == 0


def test_events_outside_the_request_are_ignored():
    r = request(e2e=1.0)
    ex = explain(r, SCOPE, [rq(-500, -1), rq(1001, 1500)])
    assert ex.causes == [] and ex.events == []


def test_tiny_waits_are_evidence_not_causes():
    ex = explain(request(), SCOPE, [rq(10, 10.2)], min_cause_s=0.001)
    assert ex.causes == []
    assert len(ex.events) == 1


def test_instant_events_are_named_after_timed_causes():
    r = request(e2e=1.0)
    xid = Event(T0 + 450 * MS, T0 + 450 * MS, "gpu_xid", "gpu:GPU-a", 1, {"xid": 79, "action": "reboot_node"})
    restart = Event(T0 + 700 * MS, T0 + 700 * MS, "worker_restart", "worker:llama", 1, {"reason": "health"})
    ex = explain(r, SCOPE, [xid, rq(100, 150), restart])
    assert [c.kind for c in ex.causes] == ["runqueue_wait", "gpu_xid", "worker_restart"]
    assert ex.causes[1].text == "GPU XID error 79 (reboot_node) on GPU-a at +450 ms (decode)"
    assert ex.causes[1].share == 0.0


def test_share_never_exceeds_one():
    r = request(e2e=0.1, ttft=0.05, queue=0.0, prefill=0.05, decode=0.04)
    ex = explain(r, SCOPE, [rq(-1000, 1000)])
    assert ex.causes[0].share == pytest.approx(1.0)


@pytest.mark.parametrize("ev,expected", [
    (Event(0, 1, "runqueue_wait", f"cgroup:{CG}"), True),
    (Event(0, 1, "runqueue_wait", "cgroup:/other.slice/x.service"), False),
    (Event(0, 1, "worker_restart", "worker:llama"), True),
    (Event(0, 1, "worker_restart", "worker:other"), False),
    (Event(0, 1, "gpu_throttle", "gpu:GPU-a"), True),
    (Event(0, 1, "gpu_throttle", "gpu:GPU-b"), False),
    (Event(0, 1, "io_stall", "dev:nvme0n1", 0, {"issuer_pid": 4243, "op": "read"}), True),
    (Event(0, 1, "io_stall", "dev:nvme0n1", 0, {"issuer_pid": 99, "op": "write"}), False),
    # A thread of the worker that the agent has not listed yet: its scope cgroup says whose.
    (Event(0, 1, "io_stall", "dev:nvme0n1", 0, {"issuer_pid": 99, "op": "read", "cgroup": CG}), True),
    (Event(0, 1, "io_pressure", f"cgroup:{CG}", 0.01, {"device": "nvme0n1", "requests": 3}), True),
    (Event(0, 1, "io_pressure", "cgroup:/other.slice/x.service", 0.01, {"device": "nvme0n1"}), False),
    (Event(0, 1, "tcp_retransmit", "node", 1, {"sport": 8000, "dport": 51000}), True),
    (Event(0, 1, "tcp_retransmit", "node", 1, {"sport": 22, "dport": 51000}), False),
    (Event(0, 1, "oom_kill", "node", 1, {"pid": 5}), True),
])
def test_concerns(ev, expected):
    assert concerns(ev, SCOPE) is expected


def test_unknown_gpus_mean_any_gpu():
    scope = RequestScope(worker="llama", cgroup=CG, gpus=None)
    assert concerns(Event(0, 1, "gpu_throttle", "gpu:GPU-zzz"), scope)
    assert "gpu:" in scope.subject_prefixes()
    assert "gpu:" not in SCOPE.subject_prefixes()


def test_subjects_cover_worker_cgroup_gpus_and_node():
    assert set(SCOPE.subjects()) == {"worker:llama", "node", f"cgroup:{CG}", "gpu:GPU-a"}


def test_explanation_json_is_complete():
    r = request()
    ex = explain(r, SCOPE, [rq(10, 60)], slow=[{"phase": "ttft", "seconds": 0.4, "threshold_seconds": 0.3, "basis": "slo"}])
    j = ex.to_json()
    assert j["trace_id"] == r.trace_id and j["worker"] == "llama"
    assert [p["name"] for p in j["phases"]] == ["frontend", "queue", "prefill", "decode", "finish"]
    assert j["causes"][0]["explained_seconds"] == pytest.approx(0.05)
    assert j["events"][0]["phase"] == "frontend"
    assert j["slow"][0]["basis"] == "slo"
    assert "events" not in ex.to_json(with_events=False)


def test_only_the_top_causes_are_listed_but_all_count_towards_explained():
    from agent.tracing.ranking import MAX_CAUSES
    r = request(e2e=1.0)
    evs = [rq(i * 40, i * 40 + 10 + i, cpu=i) for i in range(MAX_CAUSES + 3)]
    ex = explain(r, SCOPE, evs)
    assert len(ex.causes) == MAX_CAUSES and ex.more_causes == 3
    assert ex.causes[0].detail["cpu"] == MAX_CAUSES + 2  # the longest wait first
    assert ex.explained_s == pytest.approx(sum(10 + i for i in range(MAX_CAUSES + 3)) / 1000)


def test_tuning_drift_is_context_not_a_cause():
    drift = [Event(T0 + i * 100 * MS, T0 + i * 100 * MS, "tuning_drift", "node", 1,
                   {"tunable": "vm.swappiness", "current": "60", "desired": "10"}) for i in range(5)]
    ex = explain(request(e2e=1.0), SCOPE, drift)
    assert ex.causes == [] and ex.verdict == "no known cause"
    assert ex.context == ["tuning drift: vm.swappiness is 60, wanted 10"]
    assert ex.to_json()["context"] == ex.context


def test_a_cause_below_the_minimum_share_is_evidence_and_the_verdict_is_no_known_cause():
    r = request(ttft=0.42, queue=0.02, prefill=0.38, decode=0.6, e2e=1.0)
    background = [rq(100, 107, cpu=1), rq(500, 503, cpu=2)]  # 7 ms and 3 ms: 0.7% and 0.3% of e2e
    ex = explain(r, SCOPE, background, min_share=0.05)
    assert ex.causes == [] and ex.verdict == "no known cause" and ex.explained_s == 0
    assert [(c.kind, round(c.explained_s, 3)) for c in ex.evidence] == [("runqueue_wait", 0.007),
                                                                        ("runqueue_wait", 0.003)]
    doc = ex.to_json()
    assert doc["causes"] == [] and [c["key"] for c in doc["evidence"]] == ["1", "2"]
    # A wait that is a real share is a cause; the background stays evidence beside it.
    ex = explain(r, SCOPE, [*background, rq(200, 300, cpu=3)], min_share=0.05)
    assert [c.key for c in ex.causes] == ["3"] and ex.explained_s == pytest.approx(0.1)
    assert [c.key for c in ex.evidence] == ["1", "2"]
    # Severe moments have no share and stay causes.
    xid = Event(T0 + 400 * MS, T0 + 400 * MS, "gpu_xid", "gpu:GPU-a", 1.0, {"xid": 79, "action": "reboot_node"})
    assert [c.kind for c in explain(r, SCOPE, [*background, xid], min_share=0.05).causes] == ["gpu_xid"]


def test_reclaim_is_named_for_its_kind_thread_and_cgroup_and_another_cgroups_never_concerns():
    r = request(e2e=1.0)
    own = Event(T0 + 100 * MS, T0 + 140 * MS, "reclaim_stall", f"cgroup:{CG}", 0.04,
                {"tid": 4242, "cpu": 1, "kind": "memcg", "comm": "python3", "cgroup": CG})
    ex = explain(r, SCOPE, [own])
    assert ex.causes[0].text == ("reclaim stall 40.0 ms of 400 ms TTFT (the cgroup's memory limit) in thread 4242 "
                                 f"(python3), cgroup {CG}")
    assert ex.causes[0].detail["reclaim"] == "memcg"
    elsewhere = Event(T0 + 100 * MS, T0 + 140 * MS, "reclaim_stall", "cgroup:/user.slice/backup.service", 0.04,
                      {"tid": 9, "kind": "memcg", "comm": "tar", "cgroup": "/user.slice/backup.service"})
    gone = Event(T0, T0 + 50 * MS, "reclaim_stall", "thread:77", 0.05, {"tid": 77, "kind": "direct", "cgroup": ""})
    legacy = Event(T0, T0 + 50 * MS, "reclaim_stall", "node", 0.05, {"tid": 77, "kind": "direct"})
    assert not any(concerns(ev, SCOPE) for ev in (elsewhere, gone, legacy))
    assert concerns(own, SCOPE)


def test_node_events_concern_a_request_only_by_their_kinds_rule():
    from agent.events import NODE

    retrans = Event(T0, T0, "tcp_retransmit", NODE, 1.0, {"sport": 9999, "dport": 443})
    assert not concerns(retrans, SCOPE)  # the worker's port is 8000
    assert concerns(Event(T0, T0, "tcp_retransmit", NODE, 1.0, {"sport": 8000, "dport": 51000}), SCOPE)
    other_oom = Event(T0, T0, "oom_kill", NODE, 1.0, {"pid": 5, "comm": "java", "cgroup": "/user.slice/x"})
    own_oom = Event(T0, T0, "oom_kill", NODE, 1.0, {"pid": 4242, "comm": "python3", "cgroup": CG})
    assert not concerns(other_oom, SCOPE) and concerns(own_oom, SCOPE)
    assert concerns(Event(T0, T0, "tuning_drift", NODE, 1.0, {}), SCOPE)
    assert not concerns(Event(T0, T0 + MS, "runqueue_wait", NODE, 0.001, {"tid": 1}), SCOPE)
