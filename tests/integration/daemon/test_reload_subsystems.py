"""SIGHUP on a real `infernode run` starts the subsystems the new config turns on
and stops the ones it turns off, without a restart: tracing (otlp.enabled) comes
up with its receivers, metrics and explain routes and goes away again; the first
worker, on a host without a booted systemd, cannot start, which is counted as a
failed reload while the rest of the new config stays applied."""

import json
import signal
import socket
import urllib.request
from pathlib import Path

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.harness import waiting
from tests.harness.agent import Agent, only_collectors, parse_exposition, value
from tests.harness.prometheus import free_port

pytestmark = pytest.mark.integration



def wait_for(predicate, timeout=15.0, what="condition"):
    return waiting.wait_for(predicate, timeout, what)


def reload_with(agent: Agent, cfg: dict) -> None:
    agent.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    agent.send(signal.SIGHUP)


def reloads_logged(agent: Agent) -> int:
    return sum(r["msg"] == "config reloaded" for r in agent.json_logs())


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def subsystems(agent: Agent) -> list[str]:
    status, _, body = agent.get("/readyz")
    assert status == 200
    return json.loads(body)["subsystems"]


def otlp_series(text: str) -> set[str]:
    return {name for name, _ in parse_exposition(text) if name.startswith("infernode_otlp_")}


def export_empty_request(port: int) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", method="POST",
                                 data=ExportTraceServiceRequest().SerializeToString(),
                                 headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def test_reload_turns_tracing_on_and_off_without_a_restart(tmp_path):
    http_port, grpc_port = free_port(), free_port()
    cfg = {"collectors": only_collectors("loadavg"),
           "otlp": {"enabled": False, "http_listen": f"127.0.0.1:{http_port}",
                    "grpc_listen": f"127.0.0.1:{grpc_port}"}}
    with Agent.start(tmp_path / "agent", cfg) as agent:
        cfg = yaml.safe_load(agent.config_path.read_text())  # with the listen address the harness chose
        pid = agent.proc.pid
        assert "tracing" not in subsystems(agent)
        assert otlp_series(agent.metrics()) == set()
        assert not port_open(http_port) and not port_open(grpc_port)
        status, _, body = agent.get("/debug/slow")
        assert status == 503 and "not running" in json.loads(body)["error"]

        cfg["otlp"]["enabled"] = True
        reload_with(agent, cfg)
        text = wait_for(lambda: (t := agent.metrics()) and value(t, "infernode_otlp_receiver_up", transport="http")
                        == 1.0 and t, what="OTLP receivers up after the reload")
        assert value(text, "infernode_otlp_receiver_up", transport="grpc") == 1.0
        assert value(text, "infernode_config_last_reload_success") == 1.0
        assert "tracing" in subsystems(agent)
        assert export_empty_request(http_port) == 200
        assert port_open(grpc_port)
        status, _, body = agent.get("/debug/slow")
        assert status == 200 and json.loads(body)["requests_seen"] == 0

        cfg["otlp"]["enabled"] = False
        reload_with(agent, cfg)
        wait_for(lambda: reloads_logged(agent) == 2, what="second reload")
        text = agent.metrics()
        assert otlp_series(text) == set()
        assert value(text, "infernode_config_last_reload_success") == 1.0
        assert "tracing" not in subsystems(agent)
        assert not port_open(http_port) and not port_open(grpc_port)
        assert agent.get("/debug/slow")[0] == 503
        assert agent.proc.pid == pid and agent.proc.poll() is None
        msgs = [r["msg"] for r in agent.json_logs()]
        assert "subsystem tracing started: the config turns it on" in msgs
        assert "subsystem tracing stopped: the config turns it off" in msgs
        assert agent.stop() == 0


@pytest.mark.skipif(Path("/run/systemd/system").is_dir(),
                    reason="systemd is booted here: the worker supervisor would start for real")
def test_first_worker_that_cannot_start_is_a_counted_failure_and_the_config_stays(tmp_path):
    # A fixture root: the worker's drop-in is written under it, not under the host's /run.
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "loadavg").write_text("0.10 0.20 0.30 1/100 4242\n")
    cfg = {"collectors": only_collectors("loadavg"), "otlp": {"enabled": False}}
    with Agent.start(tmp_path / "agent", cfg, root=root) as agent:
        cfg = yaml.safe_load(agent.config_path.read_text())
        assert agent.get("/workers")[0] == 503
        cfg["workers"] = [{"name": "w0", "command": ["/bin/true"], "port": free_port()}]
        cfg["collectors"]["loadavg"]["enabled"] = False
        reload_with(agent, cfg)
        wait_for(lambda: reloads_logged(agent) == 1, what="reload")
        text = agent.metrics()
        assert value(text, "infernode_config_reload_failures_total") == 1.0
        assert value(text, "infernode_config_last_reload_success") == 0.0
        # Not undone: the collector the new config turns off is off.
        assert value(text, "infernode_collector_up", collector="loadavg") is None
        assert "worker" not in subsystems(agent)
        status, _, body = agent.get("/workers")
        assert status == 503 and "worker supervision is off" in json.loads(body)["error"]
        errors = [r["msg"] for r in agent.json_logs() if r["level"] == "error"]
        assert any(m.startswith("config reload incomplete: subsystem worker did not start (SystemctlError:")
                   for m in errors), errors

        # Without the worker again: a complete reload.
        del cfg["workers"]
        reload_with(agent, cfg)
        wait_for(lambda: reloads_logged(agent) == 2, what="second reload")
        text = agent.metrics()
        assert value(text, "infernode_config_last_reload_success") == 1.0
        assert value(text, "infernode_config_reload_failures_total") == 1.0
        assert agent.stop() == 0
