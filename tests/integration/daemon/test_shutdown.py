"""SIGTERM on a real `infernode run` ends it within the 5 s budget while a
subsystem is in the middle of blocking work: a file read that never returns (a
FIFO nobody writes, as a wedged NFS or sysfs read would) in the bootstrap refresh
or in tuning's start-up, and an OTLP export still arriving at the receiver."""

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.harness import waiting
from tests.harness.agent import Agent, only_collectors
from tests.harness.prometheus import free_port

pytestmark = pytest.mark.integration

STOP_BUDGET_S = 5.0


def fifo_waiters(pid: int) -> int:
    """Threads of `pid` blocked in open() of a FIFO that has no writer."""
    n = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            n += (task / "wchan").read_text().strip() == "wait_for_partner"
        except OSError:
            pass  # the thread ended meanwhile
    return n



def wait_for(predicate, timeout=15.0, what="condition"):
    return waiting.wait_for(predicate, timeout, what)


def timed_stop(agent: Agent) -> float:
    t0 = time.monotonic()
    rc = agent.stop(signal.SIGTERM, timeout=15)
    elapsed = time.monotonic() - t0
    assert rc == 0, agent.log_text()
    return elapsed


def no_otlp() -> dict:
    return {"enabled": False}


def test_sigterm_while_the_bootstrap_refresh_is_stuck_in_a_read(tmp_path):
    manifest = tmp_path / "manifest.yaml"
    os.mkfifo(manifest)
    cfg = {"collectors": only_collectors("loadavg"), "otlp": no_otlp(), "bootstrap": {"manifest": str(manifest)}}
    with Agent.start(tmp_path / "agent", cfg) as agent:
        wait_for(lambda: fifo_waiters(agent.proc.pid) == 1, what="bootstrap refresh blocked on the manifest")
        elapsed = timed_stop(agent)
    assert elapsed < STOP_BUDGET_S, f"stop took {elapsed:.1f}s with the bootstrap refresh stuck"
    assert "abandoning" not in agent.log_text()


def test_sigterm_while_tuning_is_still_starting(tmp_path):
    # Tuning reads the NUMA layout before the daemon serves; a read that never
    # returns keeps it starting, and a stop signal must still end the daemon.
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "loadavg").write_text("0.10 0.20 0.30 1/100 4242\n")
    node0 = root / "sys" / "devices" / "system" / "node" / "node0"
    node0.mkdir(parents=True)
    os.mkfifo(node0 / "cpulist")
    port = free_port()
    config = tmp_path / "infernode.yaml"
    config.write_text(f"server:\n  listen: 127.0.0.1:{port}\notlp:\n  enabled: false\n")
    agent = Agent.spawn(config, port, tmp_path, root=root)
    try:
        wait_for(lambda: fifo_waiters(agent.proc.pid) == 1, what="tuning start-up blocked on node0/cpulist")
        elapsed = timed_stop(agent)
    finally:
        agent.__exit__()
    assert elapsed < STOP_BUDGET_S, f"stop took {elapsed:.1f}s during start-up"
    msgs = [r["msg"] for r in agent.json_logs()]
    assert "stop requested while starting" in msgs
    assert "infernode serving" not in msgs


def test_sigterm_while_an_otlp_export_is_still_arriving(tmp_path):
    http_port = free_port()
    cfg = {"collectors": only_collectors("loadavg"),
           "otlp": {"enabled": True, "http_listen": f"127.0.0.1:{http_port}", "grpc_listen": f"127.0.0.1:{free_port()}"}}
    with Agent.start(tmp_path / "agent", cfg) as agent, socket.create_connection(("127.0.0.1", http_port)) as sender:
        # An exporter that sent its headers and the first bytes of a 100 kB body,
        # and then stalled (a slow link, a paused process).
        sender.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: agent\r\nContent-Type: application/x-protobuf\r\n"
                       b"Content-Length: 100000\r\n\r\n" + b"\x0a" * 16)
        time.sleep(0.5)
        elapsed = timed_stop(agent)
        sender.settimeout(5)
        # The agent let the export go: the connection is closed (perhaps after an answer).
        while sender.recv(65536):
            pass
    assert elapsed < STOP_BUDGET_S, f"stop took {elapsed:.1f}s with an export in flight"
    assert "abandoning" not in agent.log_text()
