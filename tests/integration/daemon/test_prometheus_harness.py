"""The shared Prometheus harness itself: exemplars reach query_exemplars when
Prometheus runs with exemplar storage (the OTLP/exemplar work relies on it)."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.harness.prometheus import Prometheus, PrometheusError, available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="Debian prometheus not installed (make setup installs it)"),
]

EXPOSITION = (
    b"# HELP harness_latency_seconds A histogram with an exemplar.\n"
    b"# TYPE harness_latency_seconds histogram\n"
    b'harness_latency_seconds_bucket{le="0.5"} 1 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.42\n'
    b'harness_latency_seconds_bucket{le="+Inf"} 2\n'
    b"harness_latency_seconds_count 2\n"
    b"harness_latency_seconds_sum 1.42\n"
    b"# EOF\n"
)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
        self.send_header("Content-Length", str(len(EXPOSITION)))
        self.end_headers()
        self.wfile.write(EXPOSITION)

    def log_message(self, *args):
        pass


@pytest.fixture
def exporter():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_query_exemplars_with_exemplar_storage(exporter, tmp_path):
    start = time.time() - 5
    with Prometheus.start({"static": [exporter]}, tmp_path / "prom",
                          extra_flags=["--enable-feature=exemplar-storage"]) as prom:
        prom.wait_for_target_up("static", timeout=30)
        prom.wait_for_series("harness_latency_seconds_count")
        deadline = time.monotonic() + 15
        found = []
        while not found and time.monotonic() < deadline:
            found = prom.query_exemplars("harness_latency_seconds_bucket", start, time.time() + 5)
            time.sleep(0.2)
        assert found, "no exemplars stored"
        ex = found[0]["exemplars"][0]
        assert ex["labels"] == {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
        assert float(ex["value"]) == 0.42
        assert found[0]["seriesLabels"]["le"] == "0.5"


def test_a_target_that_never_comes_up_is_reported(tmp_path):
    from tests.harness.prometheus import free_port

    with Prometheus.start({"nobody": [f"127.0.0.1:{free_port()}"]}, tmp_path / "prom") as prom:
        with pytest.raises(PrometheusError, match="no target of job 'nobody' up"):
            prom.wait_for_target_up("nobody", timeout=3)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            targets = prom.targets()
            if targets and targets[0]["health"] == "down":
                break
            time.sleep(0.2)
        assert targets[0]["health"] == "down"
        assert "connection refused" in targets[0]["lastError"]
