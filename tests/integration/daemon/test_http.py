"""The daemon's HTTP endpoints, served by a real `infernode run` subprocess."""

import json

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from tests.harness.agent import value
from tests.harness.prometheus import available, promtool_check_metrics

pytestmark = pytest.mark.integration

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
                     "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")


def test_healthz_and_readyz(agent):
    status, headers, body = agent.get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = agent.get("/readyz")
    ready = json.loads(body)
    assert status == 200
    assert ready["ready"] is True
    assert ready["collectors"] == ["loadavg"]
    assert ready["config"] == str(agent.config_path)


def test_unknown_path_is_404(agent):
    status, _, _ = agent.get("/nope")
    assert status == 404


def test_text_exposition_by_default(agent):
    status, headers, body = agent.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert "# EOF" not in text
    assert value(text, "infernode_collector_up", collector="loadavg") == 1.0
    assert value(text, "infernode_build_info", version=_version()) == 1.0
    assert value(text, "infernode_host_load", window="1m") is not None


@pytest.mark.parametrize("accept", ["application/openmetrics-text; version=1.0.0", PROMETHEUS_ACCEPT])
def test_openmetrics_when_asked(agent, accept):
    status, headers, body = agent.get("/metrics", {"Accept": accept})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}  # raises on invalid OpenMetrics
    # OpenMetrics names a counter family without _total and its sample with it.
    assert families["infernode_config_reload_failures"].type == "counter"
    assert [s.name for s in families["infernode_config_reload_failures"].samples] == [
        "infernode_config_reload_failures_total"]
    assert families["infernode_collector_up"].samples[0].labels == {"collector": "loadavg"}


@pytest.mark.skipif(not available(), reason="Debian prometheus (promtool) not installed")
def test_promtool_finds_nothing_in_text_exposition(agent):
    rc, out = promtool_check_metrics(agent.metrics().encode())
    assert rc == 0, out
    assert out.strip() == "", out


# promtool (2.42) `check metrics` reads only the text format: on OpenMetrics it
# misreads every counter family (named without _total there). The OpenMetrics
# body is checked by prometheus_client's strict parser above and by Prometheus
# itself, which scrapes with OpenMetrics (test_prometheus_scrape.py).


def test_openmetrics_refused_with_q0_gets_text(agent):
    status, headers, body = agent.get("/metrics", {"Accept": "application/openmetrics-text;q=0, text/plain"})
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert not body.endswith(b"# EOF\n")


def test_logs_are_json_lines_when_stderr_is_not_a_tty(agent):
    agent.metrics()
    logs = agent.json_logs()
    serving = [r for r in logs if r["msg"] == "infernode serving"]
    assert serving, logs
    assert serving[0]["level"] == "info"
    assert serving[0]["listen"] == f"127.0.0.1:{agent.port}"
    assert serving[0]["collectors"] == "loadavg"


def test_concurrent_scrapes_all_answer_with_collectors_up(agent):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: agent.metrics(), range(24)))
    for text in bodies:
        # A scrape that overlapped another's collector run shares it; none may see
        # a false "timeout" (up 0) because another scrape was in flight.
        assert value(text, "infernode_collector_up", collector="loadavg") == 1.0


def _version():
    from agent import __version__

    return __version__
