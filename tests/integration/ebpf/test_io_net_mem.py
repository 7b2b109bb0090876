"""Block I/O, TCP retransmits, OOM kills and reclaim, each moved by a real load."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.netns import sh, veth_pair

from .conftest import limited_memory_cgroup, scrape, value, wait_for

pytestmark = pytest.mark.integration



def events_of(node, kind, since_ns):
    return node.events.query(since_ns, time.time_ns() + 1, kinds=[kind])


@pytest.fixture
def loop_device(tmp_path):
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.truncate(32 << 20)
    dev = sh("losetup", "--find", "--show", str(backing)).stdout.strip()
    try:
        yield dev
    finally:
        sh("losetup", "-d", dev, check=False)


def test_fsync_writes_on_a_loop_device_fill_its_write_histogram(ebpf, loop_device):
    node, _ = ebpf
    name = os.path.basename(loop_device)
    labels = {"device": name, "op": "write"}
    before = scrape(node).get(("infernode_block_io_latency_seconds", tuple(sorted(labels.items()))))
    assert before is None  # a fresh device has no series yet
    t0 = time.time_ns()
    fd = os.open(loop_device, os.O_WRONLY)
    try:
        # 256 KiB writes: long enough (well over the 50 us threshold) to be events themselves,
        # not only the flushes after them.
        for i in range(50):
            os.pwrite(fd, os.urandom(256 << 10), i * (256 << 10))
            os.fsync(fd)
    finally:
        os.close(fd)
    after = scrape(node)[("infernode_block_io_latency_seconds", tuple(sorted(labels.items())))]
    assert after.count >= 50
    assert after.sum > 0
    stalls = wait_for(lambda: [e for e in events_of(node, "io_stall", t0) if e.subject == f"dev:{name}"])
    assert stalls and all(e.magnitude >= 50e-6 for e in stalls)
    assert {e.attributes["op"] for e in stalls} <= {"write", "other"} and any(
        e.attributes["op"] == "write" and e.attributes["bytes"] >= 256 << 10 for e in stalls)


def soft_irq_seconds(samples) -> float:
    return sum(v for (name, labels), v in samples.items()
               if name == "infernode_irq_time_seconds_total" and ("kind", "soft") in labels)


@pytest.fixture
def lossy_link():
    with veth_pair(prefix="ebpf", subnet="10.231.77") as pair:
        port = 5201
        # Without offloads the sender sees MSS-sized segments, so a 10% drop rate
        # means hundreds of retransmits rather than a handful of 64 KB super-packets.
        pair.run_a("ethtool", "-K", pair.if_a, "tso", "off", "gso", "off")
        pair.run_b("nft", "add", "table", "inet", "ebpft")
        pair.run_b("nft", "add", "chain", "inet", "ebpft", "input", "{ type filter hook input priority 0 ; }")
        pair.run_b("nft", "add", "rule", "inet", "ebpft", "input", "tcp", "dport", str(port),
                   "numgen", "random", "mod", "10", "==", "0", "drop")
        yield pair, port


def test_dropped_packets_are_counted_as_retransmits(ebpf, lossy_link):
    node, _ = ebpf
    pair, port = lossy_link
    first = scrape(node)
    before = value(first, "infernode_tcp_retransmits_total", local_ports="ebpftest")
    soft_before = soft_irq_seconds(first)
    t0 = time.time_ns()
    server = pair.popen_b(sys.executable, "-c",
                          "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
                          f"s.bind(('{pair.addr_b}', {port})); s.listen(); c,_=s.accept();"
                          "n=0\nwhile True:\n d=c.recv(65536)\n n+=len(d)\n if not d: break\nprint(n)",
                          stdout=subprocess.PIPE, text=True)
    try:
        client = pair.run_a(sys.executable, "-c",
                            "import socket, time\n"
                            "for _ in range(50):\n"
                            f" try: s=socket.create_connection(('{pair.addr_b}', {port}), source_address=('{pair.addr_a}', 40123)); break\n"
                            " except OSError: time.sleep(0.1)\n"
                            "s.sendall(b'x' * (5 << 20)); s.close()")
        assert client.returncode == 0
        out, _ = server.communicate(timeout=60)
        assert int(out) == 5 << 20
    finally:
        server.kill()
    last = scrape(node)
    # the client sends from 40123, inside the session's "ebpftest" local port range
    assert value(last, "infernode_tcp_retransmits_total", local_ports="ebpftest") - before >= 10
    assert soft_irq_seconds(last) > soft_before  # veth delivery runs in NET_RX softirq
    evs = wait_for(lambda: [e for e in events_of(node, "tcp_retransmit", t0)
                            if e.attributes.get("daddr") == pair.addr_b and e.attributes.get("dport") == port
                            and e.attributes.get("sport") == 40123])
    assert evs, "no tcp_retransmit event for the lossy connection"


@pytest.fixture
def memory_cgroup():
    with limited_memory_cgroup("ebpf-mem") as d:
        yield d


def in_cgroup(cg: Path, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", f'echo $$ > {cg}/tasks && exec "$@"', "sh", *cmd],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60)


def test_process_over_its_memory_limit_is_reported_as_oom_kill(ebpf, memory_cgroup):
    node, _ = ebpf
    before = value(scrape(node), "infernode_oom_kills_total")
    t0 = time.time_ns()
    proc = subprocess.Popen(["sh", "-c", f'echo $$ > {memory_cgroup}/tasks && exec "$@"', "sh",
                             sys.executable, "-c", "b = b'x' * (512 << 20)"])
    assert proc.wait(timeout=60) == -9
    evs = wait_for(lambda: [e for e in events_of(node, "oom_kill", t0) if e.attributes["pid"] == proc.pid])
    assert evs, "no oom_kill event for the victim"
    assert evs[0].attributes["comm"].startswith("python")
    assert value(scrape(node), "infernode_oom_kills_total") - before >= 1


def test_page_cache_over_the_limit_causes_reclaim(ebpf, memory_cgroup, tmp_path):
    # The machine's own memory is too large and shared to force global direct
    # reclaim; a cgroup limit makes the allocating thread reclaim for itself
    # (memcg reclaim), the same stall seen from inside a limited slice.
    node, _ = ebpf
    labels = {"scope": "other", "kind": "memcg"}
    before = value(scrape(node), "infernode_reclaim_stalls_total", **labels)
    t0 = time.time_ns()
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(192 << 20)  # reading holes fills the page cache without disk I/O
    res = in_cgroup(memory_cgroup, "cat", str(sparse))
    assert res.returncode == 0
    after = scrape(node)
    assert value(after, "infernode_reclaim_stalls_total", **labels) > before
    assert value(after, "infernode_reclaim_stall_seconds_total", **labels) > 0
    stalls = wait_for(lambda: [e for e in events_of(node, "reclaim_stall", t0) if e.attributes["comm"] == "cat"])
    assert stalls and stalls[0].attributes["kind"] == "memcg"
    # Another process's reclaim is its own cgroup's (or, once it has exited, its
    # thread's), never the node's: it concerns no worker's request.
    from agent.tracing.ranking import RequestScope, concerns

    assert stalls[0].subject != "node" and stalls[0].subject.startswith(("cgroup:", "thread:"))
    worker = RequestScope(worker="llama", cgroup="/inference.slice/infernode-worker@llama.service", port=8000)
    assert not any(concerns(ev, worker) for ev in stalls)
