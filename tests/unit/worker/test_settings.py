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
    # vLLM parses --shutdown-timeout as an int (vllm-0.33.md, item 26).
    ({"workers": [{**W, "shutdown_timeout": "2.5s"}]}, "workers.0.shutdown_timeout: 2.5s is not a whole number of "
                                                       "seconds; vLLM takes whole seconds"),
    ({"workers": [{**W, "shutdown_timeout": "500ms"}]}, "vLLM takes whole seconds"),
    ({"workers": [{**W, "shutdown_timeout": "-1s"}]}, "workers.0.shutdown_timeout"),
    # vLLM's span path asserts on the stats --disable-log-stats removes (item 15).
    ({"workers": [{**W, "args": ["--disable-log-stats"]}]},
     "workers.0: args: --disable-log-stats with tracing on kills vLLM's engine at the first finished request"),
    ({"workers": [{**W, "command": ["vllm", "serve", "m", "--disable-log-stats"]}]}, "command: --disable-log-stats"),
    ({"workers": [{**W, "args": ["--port=9000"]}]}, "args: --port is set by the agent"),
    ({"workers": [{**W, "deregister_delay": "2h"}]}, "workers.0.deregister_delay"),
    ({"workers": [{**W, "health": {"startup_grace": "0s"}}]}, "workers.0.health.startup_grace"),
])
def test_bad_worker_config_names_the_key(data, expected):
    lines = _lines(data)
    assert any(expected.replace("Value error, ", "") in line for line in lines), lines


def test_disable_log_stats_is_fine_with_tracing_off():
    cfg = parse_config({"workers": [{**W, "tracing": False, "args": ["--disable-log-stats"]}]})
    assert cfg.workers[0].args == ["--disable-log-stats"]


def test_startup_grace_outlasts_vllms_own_engine_timeout():
    # VLLM_ENGINE_READY_TIMEOUT_S defaults to 600 s (vllm/envs.py): a shorter grace
    # kills model loads vLLM itself would still wait for.
    w = parse_config({"workers": [W]}).workers[0]
    assert w.health.startup_grace >= 600
    assert w.deregister_delay > 0 and w.shutdown_timeout == 30


@pytest.mark.parametrize("value", ["2.5s", "500ms", "1.25s"])
def test_config_check_refuses_fractional_shutdown_timeout(tmp_path, value):
    p = tmp_path / "infernode.yaml"
    p.write_text(f"workers:\n  - name: w0\n    command: [vllm, serve, m]\n    shutdown_timeout: {value}\n")
    res = CliRunner().invoke(main, ["config", "check", str(p)])
    assert res.exit_code == 2, res.output
    assert "workers.0.shutdown_timeout" in res.output and "vLLM takes whole seconds" in res.output


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
    assert header.split() == ["WORKER", "GPUS", "PORT", "STATE", "PHASE", "HEALTHY", "READY", "PID", "RESTARTS",
                              "VLLM", "STARTUP", "PROBLEM"]
    assert row.split()[:11] == ["w0", "0,1", "8000", "inactive", "gpu_fault", "-", "no", "-", "2", "-", "-"]
    assert node == "node: NOT schedulable (xid_79)"


def test_minutes_that_are_whole_seconds_are_taken():
    assert parse_config({"workers": [{**W, "shutdown_timeout": "1.5m"}]}).workers[0].shutdown_timeout == 90


@pytest.mark.parametrize("args,expected", [
    (["--max-num-seqs", "64"], 64),
    (["--max-num-seqs=128", "--tensor-parallel-size", "2"], 128),
    (["--tensor-parallel-size", "2"], None),  # vLLM's default depends on the release and GPU: not assumed
    (["--max-num-seqs"], None),
    (["--max-num-seqs", "many"], None),
])
def test_the_batch_limit_is_read_from_the_workers_command_line(args, expected):
    assert parse_config({"workers": [{**W, "args": args}]}).workers[0].max_num_seqs == expected


def test_the_batch_limit_in_the_command_counts_too():
    w = {**W, "command": ["vllm", "serve", "m", "--max-num-seqs", "32"]}
    assert parse_config({"workers": [w]}).workers[0].max_num_seqs == 32


def test_metrics_interval_is_a_duration_with_a_floor():
    assert parse_config({"workers": [{**W, "metrics_interval": "1s"}]}).workers[0].metrics_interval == 1.0
    assert parse_config({"workers": [W]}).workers[0].metrics_interval is None
    assert any("workers.0.metrics_interval" in line for line in _lines({"workers": [{**W, "metrics_interval": "10ms"}]}))


@pytest.mark.parametrize("host,url", [("127.0.0.1", "http://127.0.0.1:8000"), ("0.0.0.0", "http://127.0.0.1:8000"),
                                      ("", "http://127.0.0.1:8000"), ("::1", "http://[::1]:8000"),
                                      ("10.0.0.5", "http://10.0.0.5:8000")])
def test_base_url_is_how_this_host_reaches_the_worker(host, url):
    from agent.worker.settings import WorkerSettings

    assert WorkerSettings(name="w0", host=host, command=["vllm", "serve", "m"]).base_url == url
