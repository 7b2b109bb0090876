from agent.events import Event
from agent.worker.gpufaults import node_fault, worker_fault

ADDR = ["0000:18:00.0", "0000:3b:00.0"]


def ev(kind, subject="gpu:GPU-aaa", **attrs):
    return Event(1, 1, kind, subject, 1.0, attrs)


def test_fatal_xids_and_lost_gpus():
    assert node_fault([ev("gpu_xid", xid=13)]) is None
    assert node_fault([ev("gpu_xid", xid=79)]) == "xid_79"
    assert node_fault([ev("gpu_xid", xid="95")]) == "xid_95"
    assert node_fault([ev("gpu_lost")]) == "gpu_lost"
    assert node_fault([ev("gpu_throttle", reason="HwSlowdown")]) is None


def test_resolved_by_pci_bus_id_only_hits_its_worker():
    e = ev("gpu_xid", xid=79, pci_bus_id="00000000:3B:00.0")
    assert worker_fault([e], [1], ADDR) == "xid_79"
    assert worker_fault([e], [0], ADDR) is None


def test_resolved_by_uuid_lookup():
    e = ev("gpu_lost", subject="gpu:GPU-bbb")
    lookup = {"GPU-bbb": 0}.get
    assert worker_fault([e], [0], ADDR, lookup) == "gpu_lost"
    assert worker_fault([e], [1], ADDR, lookup) is None


def test_unresolvable_fault_stops_every_gpu_worker_but_not_cpu_only_ones():
    e = ev("gpu_lost", subject="gpu:GPU-unknown")
    assert worker_fault([e], [1], ADDR) == "gpu_lost"
    assert worker_fault([e], [], ADDR) is None


def test_recovery_actions_drain_and_reboot_are_faults_reset_and_none_are_not():
    assert node_fault([ev("gpu_recovery_action", action="node_reboot")]) == "recovery_node_reboot"
    assert node_fault([ev("gpu_recovery_action", action="drain_p2p")]) == "recovery_drain_p2p"
    assert node_fault([ev("gpu_recovery_action", action="drain_and_reset")]) == "recovery_drain_and_reset"
    assert node_fault([ev("gpu_recovery_action", action="gpu_reset")]) is None
    assert node_fault([ev("gpu_recovery_action", action="none")]) is None
    e = ev("gpu_recovery_action", action="node_reboot", pci_bus_id="00000000:3B:00.0")
    assert worker_fault([e], [1], ADDR) == "recovery_node_reboot"
    assert worker_fault([e], [0], ADDR) is None
