import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.config import ConfigError, parse_config

W = {"name": "w0", "command": ["vllm", "serve", "m"]}


def _lines(data) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(data, "test.yaml")
    return e.value.lines


def test_defaults_and_durations():
    cfg = parse_config({"workers": [{**W, "shutdown_timeout": "45s", "memory_max": "64GiB",
                                     "health": {"interval": "10s", "timeout": "3s"}}]})
    w = cfg.workers[0]
    assert w.shutdown_timeout == 45 and w.memory_max == 64 << 30 and w.health.timeout == 3
    assert w.backoff.initial == 5 and w.backoff.max == 300


@pytest.mark.parametrize("data,expected", [
    ({"workers": [W, W]}, "worker name 'w0' is declared twice"),
    ({"workers": [W, {**W, "name": "w1"}]}, "port 8000 is used by more than one worker"),
    ({"workers": [{"name": "w0"}]}, "workers.0: Value error, command: the vLLM server command is required"),
    ({"workers": [{**W, "gpus": [1, 1]}]}, "gpus must be distinct"),
    ({"workers": [{**W, "memory_high": "2GiB", "memory_max": "1GiB"}]}, "memory_high must not exceed memory_max"),
    ({"workers": [{**W, "cpus": "0-3;8"}]}, "workers.0.cpus"),
    ({"workers": [{**W, "name": "../etc"}]}, "workers.0.name"),
    ({"workers": [{**W, "health": {"interval": "1s", "timeout": "2s"}}]}, "timeout (2s) must not exceed interval (1s)"),
    ({"workers": [{**W, "backoff": {"initial": "10s", "max": "5s"}}]}, "max (5s) must be at least initial (10s)"),
    ({"workers": [{**W, "restart": "always"}]}, "workers.0.restart: unknown key"),
])
def test_bad_worker_config_names_the_key(data, expected):
    lines = _lines(data)
    assert any(expected.replace("Value error, ", "") in line for line in lines), lines


def test_config_check_exits_2(tmp_path):
    p = tmp_path / "infernode.yaml"
    p.write_text("workers:\n  - name: w0\n    command: [vllm]\n    port: 70000\n")
    res = CliRunner().invoke(main, ["config", "check", str(p)])
    assert res.exit_code == 2
    assert f"{p}: workers.0.port" in res.output


def test_drain_without_agent_says_so():
    res = CliRunner().invoke(main, ["drain", "w0", "--url", "http://127.0.0.1:9"])
    assert res.exit_code == 1
    assert "cannot reach the agent at http://127.0.0.1:9/workers/w0/drain" in res.output


def test_workers_table():
    from agent.worker.cli import format_workers

    text = format_workers({"schedulable": False, "reason": "xid_79", "workers": [{
        "worker": "w0", "unit": "infernode-worker@w0.service", "gpus": "0,1", "port": 8000,
        "active_state": "inactive", "phase": "gpu_fault", "healthy": None, "main_pid": 0, "restarts": 2,
        "problem": "GPU fault: xid_79"}]})
    header, row, node = text.splitlines()
    assert header.split() == ["WORKER", "UNIT", "GPUS", "PORT", "STATE", "PHASE", "HEALTHY", "PID", "RESTARTS",
                              "PROBLEM"]
    assert row.split()[:9] == ["w0", "infernode-worker@w0.service", "0,1", "8000", "inactive", "gpu_fault", "-",
                               "-", "2"]
    assert node == "node: NOT schedulable (xid_79)"
