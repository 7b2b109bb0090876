import pytest

from agent.exposition import wants_openmetrics


@pytest.mark.parametrize("accept, expected", [
    (None, False),
    ("", False),
    ("*/*", False),
    ("text/plain", False),
    ("application/openmetrics-text", True),
    ("application/openmetrics-text; version=1.0.0", True),
    ("Application/OpenMetrics-Text; version=1.0.0", True),
    # Prometheus 2.x's scrape Accept header
    ("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
     "text/plain;version=0.0.4;q=0.3,*/*;q=0.2", True),
    ("text/plain;q=0.9, application/openmetrics-text;q=0.5", False),
    ("application/openmetrics-text;q=0, text/plain", False),
    ("application/openmetrics-text;q=0", False),
    ("application/openmetrics-text;q=abc", False),
    ("text/html,application/xhtml+xml,*/*;q=0.8", False),
])
def test_wants_openmetrics(accept, expected):
    assert wants_openmetrics(accept) is expected
