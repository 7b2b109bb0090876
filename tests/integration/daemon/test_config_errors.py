"""Bad configs: `infernode run` and `infernode config check` exit 2 and name the
file, the key path and the bad value; `run` never starts listening."""

import pytest

from tests.harness.agent import run_cli
from tests.harness.prometheus import free_port

pytestmark = pytest.mark.integration

BAD = {
    "unknown key": ("server:\n  listen: 127.0.0.1:{port}\n  lisen: :9480\n", ["server.lisen", "unknown key"]),
    "unknown section": ("servers: {}\n", ["servers", "unknown key"]),
    "unknown collector key": ("collectors:\n  loadavg: {enabled: true, intervall: 5}\n",
                              ["collectors.loadavg.intervall", "unknown key"]),
    "wrong type": ("server:\n  listen: 127.0.0.1:{port}\n  collector_timeout: fast\n",
                   ["server.collector_timeout", "'fast'", "duration"]),
    "wrong type bool": ("collectors:\n  loadavg: {enabled: maybe}\n", ["collectors.loadavg.enabled", "'maybe'"]),
    "bad listen port": ("server:\n  listen: 127.0.0.1:99999\n", ["server.listen", "99999"]),
    "bad listen host": ("server:\n  listen: 300.1.2.3:9480\n", ["server.listen", "300.1.2.3"]),
    "listen without port": ("server:\n  listen: localhost\n", ["server.listen", "HOST:PORT"]),
    "not a mapping": ("- server\n", ["top level", "mapping"]),
    "invalid yaml": ("server:\n  listen: [1,\n", ["line ", "invalid YAML"]),
}


@pytest.fixture(params=sorted(BAD), ids=sorted(BAD))
def bad_config(request, tmp_path):
    text, needles = BAD[request.param]
    port = free_port()
    path = tmp_path / "infernode.yaml"
    path.write_text(text.replace("{port}", str(port)))
    return path, needles, port


def test_config_check_exits_2_naming_the_key(bad_config):
    path, needles, _ = bad_config
    p = run_cli("config", "check", str(path))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert str(path) in p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_run_exits_2_without_serving(bad_config):
    path, needles, port = bad_config
    p = run_cli("run", "--config", str(path), timeout=30)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert str(path) in p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr
    assert "infernode serving" not in p.stderr


def test_missing_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "absent.yaml"
    p = run_cli("config", "check", str(path))
    assert p.returncode == 2
    assert f"{path}: cannot read" in p.stderr


def test_good_config_checks_ok(tmp_path, repo):
    example = repo / "examples" / "infernode.yaml"
    p = run_cli("config", "check", str(example))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{example}: ok"
