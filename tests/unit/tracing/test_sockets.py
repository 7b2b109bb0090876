"""An unsupervised worker's listening ports, read from a real process's procfs, scope
its TCP retransmits as a supervised worker's port does."""

from __future__ import annotations

import subprocess
import sys

from agent.events import NODE, Event
from agent.paths import Paths
from agent.services import Services
from agent.tracing.ranking import concerns
from agent.tracing.scope import ScopeResolver
from agent.tracing.sockets import listening_ports, parse_proc_net_tcp
from tests.unit.tracing.spanfactory import T0, request

LISTENER = """
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.bind(("::", 0)); s.listen()
c = socket.create_connection(("127.0.0.1", s.getsockname()[1]))  # an established socket: not listening
print(s.getsockname()[1], flush=True)
time.sleep(60)
"""


def test_parse_listen_rows_only() -> None:
    text = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            "   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0  0 4242 1 x 100 0 0 10 0\n"
            "   1: 0100007F:BEA7 0100007F:1F40 01 00000000:00000000 00:00000000 00000000  0  0 4343 1 x\n"
            "   2: garbage\n")
    assert parse_proc_net_tcp(text) == {4242: 8000}


def test_a_real_process_listening_ports_and_the_scope_they_give() -> None:
    proc = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        assert listening_ports(Paths("/"), proc.pid) == {port}
        # No worker configured: the span's sender is a vLLM the agent does not supervise.
        resolver = ScopeResolver(Paths("/"), [], Services())
        scope = resolver.scope(request(pid=proc.pid))
        assert scope.port is None and scope.listen_ports == {port}
        own = Event(T0, T0, "tcp_retransmit", NODE, 1.0, {"sport": port, "dport": 51000})
        other = Event(T0, T0, "tcp_retransmit", NODE, 1.0, {"sport": 6379, "dport": 51000})
        assert concerns(own, scope) and not concerns(other, scope)
    finally:
        proc.kill()
        proc.wait()
    assert listening_ports(Paths("/"), proc.pid) == frozenset()  # gone


def test_a_process_that_listens_on_nothing_keeps_every_retransmit() -> None:
    # Without ports to go by, a retransmit is not ruled out (the rule's "unknown" case).
    proc = subprocess.Popen([sys.executable, "-c", "import socket, time; s = socket.socket(); "
                             "s.bind(('127.0.0.1', 0)); print(1, flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        scope = ScopeResolver(Paths("/"), [], Services()).scope(request(pid=proc.pid))
    finally:
        proc.kill()
        proc.wait()
    assert scope.listen_ports == frozenset()
    assert concerns(Event(T0, T0, "tcp_retransmit", NODE, 1.0, {"sport": 1, "dport": 2}), scope)


def test_an_unsupervised_workers_batch_limit_comes_from_its_command_line(tmp_path) -> None:
    # What real vLLM's API server process shows in /proc/PID/cmdline (NUL-separated).
    for pid, argv, limit in ((101, ["python3", "-m", "vllm", "serve", "m", "--max-num-seqs", "64"], 64),
                             (102, ["vllm", "serve", "m", "--max-num-seqs=8"], 8),
                             (103, ["vllm", "serve", "m", "--config", "c.yaml"], None),
                             (104, ["vllm", "serve", "m", "--max-num-seqs", "many"], None)):
        (tmp_path / "proc" / str(pid)).mkdir(parents=True)
        (tmp_path / "proc" / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        scope = ScopeResolver(Paths(tmp_path), [], Services()).scope(request(pid=pid))
        assert scope.batch_limit == limit, argv
    # A process that is gone: unknown, not an error.
    assert ScopeResolver(Paths(tmp_path), [], Services()).scope(request(pid=999)).batch_limit is None
