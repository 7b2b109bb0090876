"""The daemon's tuning loop on the fixture tree: drift behind the engine's back
shows in the metric and the EventStore; enforce mode re-applies and counts it."""

import asyncio
import struct

from agent.config import parse_config
from agent.daemon import Daemon
from agent.events import NODE
from agent.exposition import render
from agent.paths import Paths
from agent.plugins import subsystem_classes
from tuning.subsystem import TuningSubsystem

from .conftest import invoke


def make(root, **tuning):
    tuning.setdefault("profile_dirs", [])
    daemon = Daemon(parse_config({"tuning": tuning}), None, Paths(root), subsystem_classes())
    return daemon, next(s for s in daemon.subsystems if isinstance(s, TuningSubsystem))


def applied(root, tmp_path):
    """The default profile applied to the fixture root by `tune apply`; its config."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tuning:\n  profile_dirs: []\n")
    assert invoke("tune", "apply", "--root", str(root), "--config", str(cfg)).exit_code == 0
    return cfg


def gauges(sub):
    return {(s.labels["tunable"], s.labels["target"]): s.value
            for s in sub.samples() if s.name == "infernode_tuning_in_desired_state"}


def run(coro):
    return asyncio.run(coro)


def test_audit_reports_drift_in_metric_and_events_and_changes_nothing(root, tmp_path):
    cfg = applied(root, tmp_path)
    daemon, sub = make(root)

    async def scenario():
        await sub.start()
        try:
            assert set(gauges(sub).values()) == {1}
            (root / "proc/sys/vm/swappiness").write_text("60\n")
            (root / "proc/irq/121/smp_affinity_list").write_text("0-31\n")
            drift = sub.verify_once()
            sub.verify_once()  # a drift that persists is one event, not one per round
            return drift
        finally:
            await sub.stop()

    drift = run(scenario())
    assert {(r.tunable, r.target) for r in drift} == {("vm.swappiness", "system"), ("nic.irq_affinity", "ens1f0np0/irq121")}
    g = gauges(sub)
    assert g[("vm.swappiness", "system")] == 0 and g[("nic.irq_affinity", "ens1f0np0/irq121")] == 0
    assert g[("vm.dirty_ratio", "system")] == 1
    assert ("cpu.dma_latency_us", "system") not in g  # audit holds nothing
    events = [e for e in daemon.events.recent() if e.kind == "tuning_drift"]
    assert len(events) == 2 and all(e.subject == NODE for e in events)
    swap = next(e for e in events if e.attributes["tunable"] == "vm.swappiness")
    assert swap.attributes["current"] == "60" and swap.attributes["desired"] == "10"
    assert (root / "proc/sys/vm/swappiness").read_text() == "60\n"  # audit never changes the host
    body, _ = render(list(sub.samples()), daemon.telemetry.catalog, openmetrics=False)
    assert b'infernode_tuning_in_desired_state{target="system",tunable="vm.swappiness"} 0.0' in body
    verify = invoke("tune", "verify", "--root", str(root), "--config", str(cfg))
    assert verify.exit_code == 1 and "drift vm.swappiness system: current 60, desired 10" in verify.output


def test_enforce_applies_at_start_reapplies_drift_and_holds_latency(root):
    daemon, sub = make(root, mode="enforce")
    dev = root / "dev/cpu_dma_latency"

    async def scenario():
        await sub.start()
        try:
            assert struct.unpack("=i", dev.read_bytes())[0] == 2
            assert sub.holder.fd is not None
            assert gauges(sub)[("cpu.dma_latency_us", "system")] == 1
            assert (root / "proc/sys/vm/swappiness").read_text() == "10\n"
            (root / "proc/sys/vm/swappiness").write_text("60\n")
            sub.verify_once()
            return sub.holder
        finally:
            await sub.stop()

    holder = run(scenario())
    assert (root / "proc/sys/vm/swappiness").read_text() == "10\n"
    assert sub.reapplied == 1
    samples = {s.name: s.value for s in sub.samples()}
    assert samples["infernode_tuning_reapplied_total"] == 1
    assert gauges(sub)[("vm.swappiness", "system")] == 1
    assert holder.fd is None  # released when the daemon stops
    kinds = [e.kind for e in daemon.events.recent()]
    assert kinds.count("tuning_drift") == 1 and kinds.count("tuning_applied") == 2


def test_bad_profile_in_daemon_is_a_doctor_failure_not_a_crash(root, tmp_path):
    (tmp_path / "broken.yaml").write_text("tunables:\n  vm.swappiness: lots\n")
    daemon, sub = make(root, profile="broken", profile_dirs=[str(tmp_path)], mode="enforce")

    async def scenario():
        await sub.start()
        await sub.stop()

    run(scenario())
    rows = list(sub.doctor())
    assert rows[0].status == "fail" and "broken.yaml: tunables.vm.swappiness" in rows[0].detail
    assert (root / "proc/sys/vm/swappiness").read_text() == "60\n"


def test_drift_is_an_interval_from_detection_to_repair_and_context_for_every_request_inside(root, tmp_path):
    """A drift lasts: while open it is offered to the correlation (services), and it
    is written once, as [detected, repaired], when it ends."""
    from agent.events import now_ns
    from agent.tracing.correlate import explain
    from agent.tracing.ranking import RequestScope, concerns
    from tests.unit.tracing.spanfactory import T0, request

    applied(root, tmp_path)
    daemon, sub = make(root)

    async def scenario():
        await sub.start()
        try:
            swappiness = root / "proc/sys/vm/swappiness"
            swappiness.write_text("60\n")
            t_detect = now_ns()
            sub.verify_once()
            sub.verify_once()
            stored = [e for e in daemon.events.recent() if e.kind == "tuning_drift"]
            opened = daemon.services.tuning_open_events()
            swappiness.write_text("10\n")
            sub.verify_once()  # repaired behind the agent's back: the drift is over
            t_repair = now_ns()
            return stored, opened, t_detect, t_repair
        finally:
            await sub.stop()

    stored, opened, t_detect, t_repair = run(scenario())
    assert stored == []  # nothing written while it lasts
    assert [(e.attributes["tunable"], e.attributes["state"]) for e in opened] == [("vm.swappiness", "open")]
    (done,) = [e for e in daemon.events.recent() if e.kind == "tuning_drift"]
    assert t_detect <= done.start_ns < done.end_ns <= t_repair and "state" not in done.attributes
    assert daemon.services.tuning_open_events is None  # withdrawn when the subsystem stopped
    # Every request inside the interval, not only one in flight at detection, has it as context.
    mid = (done.start_ns + done.end_ns) // 2
    r = request(start_ms=(mid - T0) / 1e6, ttft=0.0005, queue=0.0, prefill=0.0, decode=0.0, e2e=0.001)
    scope = RequestScope(worker="llama")
    assert concerns(done, scope)
    assert explain(r, scope, [done]).context == ["tuning drift: vm.swappiness is 60, wanted 10"]
