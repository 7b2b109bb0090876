"""sd_notify over a real datagram socket the test owns, as systemd would bind it."""

import os
import signal
import socket
import time

import pytest

from tests.harness.agent import Agent

pytestmark = pytest.mark.integration


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.2)
    yield s, path
    s.close()


def drain(sock, until, timeout=10.0):
    """Messages received until `until(messages)` holds or the timeout passes."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
    return got


def test_ready_then_watchdog_pings_then_stopping(tmp_path, notify_socket):
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}  # ping every 0.1 s
    with Agent.start(tmp_path / "agent", {}, env=env) as agent:
        got = drain(sock, lambda m: sum(x == "WATCHDOG=1" for x in m) >= 3)
        assert got[0].startswith("READY=1\n"), got
        assert f"STATUS=serving 127.0.0.1:{agent.port}" in got[0]
        assert sum(x == "WATCHDOG=1" for x in got) >= 3, got

        agent.send(signal.SIGHUP)
        got = drain(sock, lambda m: "READY=1" in m)
        assert "RELOADING=1" in got and got.index("RELOADING=1") < got.index("READY=1"), got

        assert agent.stop() == 0
        got = drain(sock, lambda m: "STOPPING=1" in m, timeout=2)
        assert "STOPPING=1" in got, got


def test_no_watchdog_pings_for_another_pid(tmp_path, notify_socket):
    sock, path = notify_socket
    # WATCHDOG_PID names the process systemd watches; another process must not ping.
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    with Agent.start(tmp_path / "agent", {}, env=env) as agent:
        got = drain(sock, lambda m: False, timeout=1.0)
        assert got and got[0].startswith("READY=1"), got
        assert "WATCHDOG=1" not in got
        agent.stop()


def test_a_dead_notify_socket_does_not_stop_the_agent(tmp_path):
    env = {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock"), "WATCHDOG_USEC": "200000"}
    with Agent.start(tmp_path / "agent", {}, env=env) as agent:
        time.sleep(0.5)
        assert agent.get("/healthz")[0] == 200
        assert agent.stop() == 0
