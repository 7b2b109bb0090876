import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.config import ConfigError, load_config, parse_config


def problems(data) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(data, "test.yaml")
    return e.value.lines


def test_defaults_need_no_file():
    cfg = parse_config({})
    assert cfg.server.listen == ":9480"
    assert cfg.collectors.cgroup.slice == "inference.slice"
    assert cfg.tuning.mode == "audit"


@pytest.mark.parametrize("data,line", [
    ({"server": {"listn": ":1"}}, "server.listn: unknown key"),
    ({"bogus": 1}, "bogus: unknown key"),
    ({"collectors": {"cpu": {"enabeld": True}}}, "collectors.cpu.enabeld: unknown key"),
    ({"collectors": {"nosuch": {}}}, "collectors.nosuch: unknown key"),
])
def test_unknown_keys_name_their_path(data, line):
    assert line in problems(data)


@pytest.mark.parametrize("data,path,got", [
    ({"server": {"collector_timeout": "fast"}}, "server.collector_timeout", "'fast'"),
    ({"collectors": {"meminfo": {"enabled": "sometimes"}}}, "collectors.meminfo.enabled", "'sometimes'"),
    ({"events": {"max_bytes": "lots"}}, "events.max_bytes", "'lots'"),
    ({"tuning": {"mode": "yolo"}}, "tuning.mode", "'yolo'"),
])
def test_wrong_types_name_path_value_and_expectation(data, path, got):
    lines = problems(data)
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: ") and f"(got {got})" in lines[0]


@pytest.mark.parametrize("listen", ["9480", "host:99999", "[::1]9480"])
def test_bad_listen_address(listen):
    lines = problems({"server": {"listen": listen}})
    assert len(lines) == 1 and lines[0].startswith("server.listen: ") and repr(listen) in lines[0]


def test_every_problem_is_reported_at_once():
    lines = problems({"server": {"listen": "x", "bogus": 1}, "log": {"level": "loud"}})
    assert {line.split(":")[0] for line in lines} == {"server.listen", "server.bogus", "log.level"}


def test_a_top_level_that_is_not_a_mapping():
    assert problems(["a"]) == ["top level: expected a mapping of sections, got list"]


def test_file_errors_name_the_file(tmp_path):
    f = tmp_path / "infernode.yaml"
    f.write_text("server:\n  listen: [1, 2\n")
    with pytest.raises(ConfigError, match=f"{f}: line 3, column 1: invalid YAML"):
        load_config(f)
    f.write_text("server:\n  nope: 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert str(e.value) == f"{f}: server.nope: unknown key"
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_config_check_exits_2_with_the_key_path(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("collectors:\n  cgroup:\n    slice: 42\n")
    result = CliRunner().invoke(main, ["config", "check", str(f)])
    assert result.exit_code == 2
    assert "collectors.cgroup.slice" in result.output and str(f) in result.output
