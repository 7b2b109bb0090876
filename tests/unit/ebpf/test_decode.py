import socket
import struct

import pytest

from collectors.ebpf.decode import RECORD, dev_name_key, parse_record, to_event


def record(program, tid=0, cpu=0, scope_id=0, end_ns=0, duration_ns=0, a=0, b=0, other=0, flags=0, comm=b""):
    return RECORD.pack(program, tid, cpu, scope_id, end_ns, duration_ns, a, b, other, flags, comm)


def conv(offset):
    return lambda mono: mono + offset


def no_dev(major, minor):
    return f"{major}:{minor}"


def test_runqueue_record_becomes_wait_event_on_the_cgroup_with_realtime_times():
    raw = parse_record(record(0, tid=4242, cpu=1, scope_id=3, end_ns=10_000_000_000, duration_ns=7_000_000,
                              other=77, comm=b"hog\0garbage"))
    ev = to_event(raw, conv(1_700_000_000_000_000_000), {3: "/inference.slice/vllm.service"}, no_dev)
    assert ev.kind == "runqueue_wait"
    assert ev.subject == "cgroup:/inference.slice/vllm.service"
    assert ev.end_ns == 1_700_000_010_000_000_000
    assert ev.start_ns == ev.end_ns - 7_000_000
    assert ev.magnitude == pytest.approx(0.007)
    assert ev.attributes == {"tid": 4242, "cpu": 1, "holder_pid": 77, "holder_comm": "hog"}


def test_block_record_names_the_device_and_op():
    dev = (7 << 20) | 3  # kernel-internal dev_t: MINORBITS = 20
    assert dev_name_key(dev) == (7, 3)
    raw = parse_record(record(2, tid=9, end_ns=5, duration_ns=60_000_000, a=dev, b=4096, flags=1))
    ev = to_event(raw, conv(0), {}, lambda ma, mi: f"loop{mi}" if ma == 7 else "?")
    assert (ev.kind, ev.subject) == ("io_stall", "dev:loop3")
    assert ev.attributes["op"] == "write" and ev.attributes["bytes"] == 4096 and ev.attributes["issuer_pid"] == 9
    assert "cgroup" not in ev.attributes  # not submitted by an inference thread


def test_block_record_of_an_inference_thread_carries_its_cgroup_and_queueing():
    dev = (7 << 20) | 3
    raw = parse_record(record(2, tid=9, scope_id=2, end_ns=5, duration_ns=60_000_000, a=dev, b=65536, flags=0,
                              other=45_000))
    ev = to_event(raw, conv(0), {2: "/inference.slice/vllm.service"}, lambda ma, mi: f"loop{mi}")
    assert ev.subject == "dev:loop3" and ev.magnitude == pytest.approx(0.060)
    assert ev.attributes["cgroup"] == "/inference.slice/vllm.service"
    assert ev.attributes["queued_seconds"] == pytest.approx(0.045) and ev.attributes["op"] == "read"


def test_tcp_record_decodes_ipv4_addresses_and_ports():
    s = struct.unpack("<I", socket.inet_aton("10.0.0.1"))[0]
    d = struct.unpack("<I", socket.inet_aton("10.0.0.2"))[0]
    raw = parse_record(record(3, a=(d << 32) | s, b=(5001 << 16) | 43210, flags=socket.AF_INET))
    ev = to_event(raw, conv(0), {}, no_dev)
    assert ev.kind == "tcp_retransmit" and ev.subject == "node"
    assert ev.attributes == {"sport": 43210, "dport": 5001, "saddr": "10.0.0.1", "daddr": "10.0.0.2"}


def test_oom_record_carries_victim_pid_comm_and_cgroup():
    raw = parse_record(record(4, other=31337, comm=b"python3"))
    ev = to_event(raw, conv(0), {}, no_dev, cgroup_of_pid=lambda pid: "/victims" if pid == 31337 else None)
    assert ev.kind == "oom_kill"
    assert ev.attributes == {"pid": 31337, "comm": "python3", "cgroup": "/victims"}


def test_reclaim_record_outside_any_scope_is_its_own_cgroups_never_the_nodes():
    raw = parse_record(record(5, tid=5, duration_ns=12_000_000, flags=1, comm=b"dd"))
    ev = to_event(raw, conv(0), {}, no_dev, lambda pid: "/user.slice/backup.service" if pid == 5 else None)
    assert (ev.kind, ev.subject, ev.attributes["kind"]) == ("reclaim_stall", "cgroup:/user.slice/backup.service", "memcg")
    assert ev.attributes["cgroup"] == "/user.slice/backup.service" and ev.attributes["comm"] == "dd"
    # A thread gone before its cgroup could be read is named by its id, still not the node.
    gone = to_event(raw, conv(0), {}, no_dev)
    assert gone.subject == "thread:5" and gone.attributes["cgroup"] == ""


def test_bad_records_are_rejected_with_a_reason():
    with pytest.raises(ValueError, match="bytes"):
        parse_record(b"\0" * 10)
    with pytest.raises(ValueError, match="unknown program id 99"):
        parse_record(record(99))
    with pytest.raises(ValueError, match="does not emit"):
        to_event(parse_record(record(6)), conv(0), {}, no_dev)


def test_a_run_queue_holder_is_named_with_its_process():
    raw = parse_record(record(0, tid=4242, cpu=1, scope_id=3, end_ns=10_000_000_000, duration_ns=7_000_000,
                              other=77, comm=b"worker-7\0"))
    ev = to_event(raw, conv(0), {3: "/w"}, no_dev, process_of=lambda tid: (70, "hog") if tid == 77 else None)
    assert ev.attributes["holder_process_pid"] == 70 and ev.attributes["holder_process_comm"] == "hog"
    # The idle task (0) is no thread of any process; a holder gone from procfs has none.
    idle = parse_record(record(0, tid=4242, cpu=1, scope_id=3, end_ns=1, duration_ns=1, other=0, comm=b"swapper/1"))
    assert "holder_process_pid" not in to_event(idle, conv(0), {3: "/w"}, no_dev, process_of=lambda t: (1, "x")).attributes
    gone = to_event(raw, conv(0), {3: "/w"}, no_dev, process_of=lambda tid: None)
    assert "holder_process_pid" not in gone.attributes


def test_a_real_threads_process_from_procfs():
    import os
    import threading

    from agent.cgroups import parse_tgid, process_of_thread
    from agent.paths import Paths

    assert parse_tgid("Name:\tx\nTgid:\t970\nPid:\t977\n") == 970
    assert parse_tgid("Name:\tx\n") is None and parse_tgid("Tgid:\tnope\n") is None
    found: list = []
    t = threading.Thread(target=lambda: found.append(process_of_thread(Paths("/"), threading.get_native_id())))
    t.start()
    t.join()
    with open(f"/proc/{os.getpid()}/comm") as f:
        assert found == [(os.getpid(), f.read().strip())]
    assert process_of_thread(Paths("/"), 2**22 + 12345) is None  # beyond pid_max: no such thread
