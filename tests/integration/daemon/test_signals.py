"""Signals on a real `infernode run`: SIGHUP reloads all-or-nothing, SIGTERM and
SIGINT stop within the 5 s budget, also with a collector stuck in a read."""

import signal
import socket
import time

import pytest
import yaml

from tests.harness import waiting
from tests.harness.agent import Agent, only_collectors, value
from tests.harness.prometheus import free_port

pytestmark = pytest.mark.integration

STOP_BUDGET_S = 5.0



def wait_for(predicate, timeout=10.0, what="condition"):
    return waiting.wait_for(predicate, timeout, what)


def reload_with(agent, text):
    agent.config_path.write_text(text)
    agent.send(signal.SIGHUP)


def test_sighup_with_broken_config_keeps_serving_and_counts(agent):
    before = agent.metrics()
    assert value(before, "infernode_config_reload_failures_total") == 0.0
    good_text = agent.config_path.read_text()

    reload_with(agent, good_text + "bogus_section: {}\n")
    after = wait_for(lambda: (t := agent.metrics()) and value(t, "infernode_config_reload_failures_total") == 1.0 and t,
                     what="reload failure counted")
    assert value(after, "infernode_config_last_reload_success") == 0.0
    assert value(after, "infernode_collector_up", collector="loadavg") == 1.0
    assert any(r["level"] == "error" and "bogus_section: unknown key" in r["msg"] for r in agent.json_logs())

    # A second broken config (bad type this time) counts again; still serving.
    reload_with(agent, good_text.replace("enabled: true", "enabled: sometimes"))
    wait_for(lambda: value(agent.metrics(), "infernode_config_reload_failures_total") == 2.0,
             what="second reload failure counted")
    assert agent.proc.poll() is None


def test_sighup_with_valid_config_applies_it(agent):
    assert value(agent.metrics(), "infernode_host_load", window="1m") is not None
    cfg = yaml.safe_load(agent.config_path.read_text())
    cfg["collectors"]["loadavg"]["enabled"] = False
    reload_with(agent, yaml.safe_dump(cfg))

    def loadavg_gone():
        t = agent.metrics()
        return "infernode_host_load" not in t and "loadavg" not in t and t
    text = wait_for(loadavg_gone, what="disabled collector's series gone")
    assert value(text, "infernode_config_last_reload_success") == 1.0
    assert value(text, "infernode_config_reload_failures_total") == 0.0

    cfg["collectors"]["loadavg"]["enabled"] = True
    reload_with(agent, yaml.safe_dump(cfg))
    wait_for(lambda: value(agent.metrics(), "infernode_collector_up", collector="loadavg") == 1.0,
             what="re-enabled collector back")
    assert any(r["msg"] == "config reloaded" for r in agent.json_logs())


def test_sighup_moving_to_a_busy_port_is_rejected_whole(agent):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cfg = yaml.safe_load(agent.config_path.read_text())
        cfg["server"]["listen"] = f"127.0.0.1:{busy.getsockname()[1]}"
        cfg["collectors"]["loadavg"]["enabled"] = False
        reload_with(agent, yaml.safe_dump(cfg))
        text = wait_for(lambda: (t := agent.metrics()) and value(t, "infernode_config_reload_failures_total") == 1.0
                        and t, what="reload rejected")
    # Nothing half-applied: the collector the rejected config disabled still runs.
    assert value(text, "infernode_collector_up", collector="loadavg") == 1.0


def test_sighup_moving_to_a_free_port_moves_the_server(agent):
    new_port = free_port()
    cfg = yaml.safe_load(agent.config_path.read_text())
    cfg["server"]["listen"] = f"127.0.0.1:{new_port}"
    old_url = agent.url
    reload_with(agent, yaml.safe_dump(cfg))
    moved = Agent(agent.proc, new_port, agent.config_path, agent.log_path)
    moved.wait_ready(10)
    assert value(moved.metrics(), "infernode_config_last_reload_success") == 1.0

    def old_port_closed():
        try:
            socket.create_connection(("127.0.0.1", int(old_url.rpartition(":")[2])), timeout=1).close()
            return False
        except OSError:
            return True
    wait_for(old_port_closed, what="old port closed")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_exits_cleanly_within_budget(agent, sig):
    agent.metrics()
    t0 = time.monotonic()
    rc = agent.stop(sig, timeout=15)
    elapsed = time.monotonic() - t0
    assert rc == 0, agent.log_text()
    assert elapsed < STOP_BUDGET_S, f"took {elapsed:.1f}s"
    assert "Traceback" not in agent.log_text()


def test_hung_collector_times_out_and_does_not_block_stop(tmp_path, hung_root):
    timeout = 1.0
    cfg = {"server": {"collector_timeout": "1s"}, "collectors": only_collectors("loadavg")}
    with Agent.start(tmp_path / "agent", cfg, root=hung_root) as agent:
        for _ in range(3):
            t0 = time.monotonic()
            text = agent.metrics()
            elapsed = time.monotonic() - t0
            assert value(text, "infernode_collector_up", collector="loadavg") == 0.0
            assert elapsed < timeout + 1.0, f"scrape took {elapsed:.2f}s with a {timeout}s collector timeout"
        status, _, _ = agent.get("/healthz", timeout=2)
        assert status == 200
        warnings = [r["msg"] for r in agent.json_logs() if r["level"] == "warning"]
        assert any("collector loadavg is timeout" in m for m in warnings), warnings

        t0 = time.monotonic()
        rc = agent.stop(signal.SIGTERM, timeout=15)
        elapsed = time.monotonic() - t0
        assert rc == 0, agent.log_text()
        assert elapsed < STOP_BUDGET_S, f"stop took {elapsed:.1f}s with a hung collector thread"


def test_listen_address_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "infernode.yaml"
        path.write_text(f"server:\n  listen: 127.0.0.1:{port}\n")
        agent = Agent.spawn(path, port, tmp_path)
        rc = agent.proc.wait(30)
    assert rc == 1
    err = agent.log_text()
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "address already in use" in err
    assert str(path) in err
    assert "Traceback" not in err


def test_stop_during_a_scrape_stuck_on_a_hung_collector(tmp_path, hung_root):
    import threading

    cfg = {"server": {"collector_timeout": "30s"}, "collectors": only_collectors("loadavg")}
    with Agent.start(tmp_path / "agent", cfg, root=hung_root) as agent:
        outcome = []

        def scrape():
            try:
                outcome.append(agent.get("/metrics", timeout=60)[0])
            except Exception as e:  # noqa: BLE001 - the agent closes the connection on its way out
                outcome.append(type(e).__name__)

        t = threading.Thread(target=scrape)
        t.start()
        time.sleep(0.5)  # the scrape is now waiting on the hung collector
        t0 = time.monotonic()
        rc = agent.stop(signal.SIGTERM, timeout=15)
        elapsed = time.monotonic() - t0
        t.join(10)
        assert rc == 0, agent.log_text()
        assert elapsed < STOP_BUDGET_S, f"stop took {elapsed:.1f}s with a scrape in flight"
        assert outcome and outcome[0] != 200


@pytest.mark.parametrize("worker, said", [
    ({"shutdown_timeout": "2.5s"}, "vLLM takes whole seconds"),
    ({"args": ["--disable-log-stats"]}, "--disable-log-stats with tracing on kills vLLM's engine"),
])
def test_sighup_refuses_worker_settings_vllm_cannot_run(agent, worker, said):
    # vllm-0.33.md items 15 and 26: the reload is refused whole and counted; the
    # running config stays (no worker is configured, so none is started).
    cfg = yaml.safe_load(agent.config_path.read_text())
    cfg["workers"] = [{"name": "w0", "command": ["/bin/false"], **worker}]
    reload_with(agent, yaml.safe_dump(cfg))
    after = wait_for(lambda: (t := agent.metrics()) and value(t, "infernode_config_reload_failures_total") == 1.0 and t,
                     what="reload failure counted")
    assert value(after, "infernode_config_last_reload_success") == 0.0
    assert "infernode_worker_up" not in after
    assert any(r["level"] == "error" and said in r["msg"] and "workers.0" in r["msg"] for r in agent.json_logs())


def test_sighup_with_pathological_files_counts_each_and_keeps_serving(agent):
    # Issue-18 abuse run: these killed the reload task uncounted, and a binary file
    # after a good reload left last_reload_success at 1.
    good = agent.config_path.read_text()
    bad = [b"\x00\x01\x02\xff" * 64, "server:\n  listen: caf\u00e9:1\n".encode("latin-1"),
           ("a: " + "[" * 500 + "]" * 500 + "\n").encode(), ("events:\n  max_bytes: " + "9" * 4301 + "\n").encode()]
    for n, raw in enumerate(bad, start=1):
        reload_with(agent, good)
        wait_for(lambda: value(agent.metrics(), "infernode_config_last_reload_success") == 1.0, what="good reload")
        agent.config_path.write_bytes(raw)
        agent.send(signal.SIGHUP)
        text = wait_for(lambda: (t := agent.metrics()) and value(t, "infernode_config_reload_failures_total") == n
                        and t, what=f"broken reload {n} counted")
        assert value(text, "infernode_config_last_reload_success") == 0.0
        assert value(text, "infernode_collector_up", collector="loadavg") == 1.0
    assert agent.proc.poll() is None
    assert not any("Traceback" in r.get("msg", "") or "never retrieved" in r.get("msg", "") for r in agent.json_logs())
