"""A real Prometheus (Debian `prometheus`) scrapes a real `infernode run`."""

import pytest

from tests.harness.prometheus import Prometheus, available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="Debian prometheus not installed (make setup installs it)"),
]


def test_prometheus_scrapes_the_agent(agent, tmp_path):
    target = f"127.0.0.1:{agent.port}"
    with Prometheus.start({"infernode": [target]}, tmp_path / "prom", scrape_interval="1s") as prom:
        t = prom.wait_for_target_up("infernode", timeout=30)
        assert t["scrapeUrl"] == f"http://{target}/metrics"
        assert t["lastError"] == ""

        up = prom.wait_for_series('up{job="infernode"} == 1')
        assert up[0]["metric"]["instance"] == target

        names = {r["metric"]["__name__"] for r in prom.query('{job="infernode", __name__=~"infernode_.+"}')}
        for expected in ("infernode_build_info", "infernode_collector_up", "infernode_collector_duration_seconds",
                         "infernode_host_load", "infernode_config_reload_failures_total",
                         "infernode_process_resident_memory_bytes"):
            assert expected in names, sorted(names)

        loadavg_up = prom.query('infernode_collector_up{job="infernode", collector="loadavg"}')
        assert [r["value"][1] for r in loadavg_up] == ["1"]
        # Prometheus asks for OpenMetrics first: every sample the agent exposes
        # must have been ingested, none rejected.
        scraped = prom.query('scrape_samples_scraped{job="infernode"}')
        post_relabel = prom.query('scrape_samples_post_metric_relabeling{job="infernode"}')
        assert float(scraped[0]["value"][1]) == float(post_relabel[0]["value"][1]) >= len(names)
