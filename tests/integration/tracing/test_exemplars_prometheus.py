"""Request histograms reach a real Prometheus with their trace-id exemplars, from
spans the real OTLP exporter sent to a real `infernode run`; and `infernode
explain`/`slow` answer for those traces over the agent's HTTP endpoint."""

import json
import time

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

from tests.harness import prometheus as promh
from tests.harness.agent import Agent, only_collectors, run_cli
from tests.unit.tracing.sdkspans import emit_llm_request, provider

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not promh.available(), reason="needs Debian prometheus (make setup installs it)"),
]


def test_trace_ids_reach_prometheus_as_exemplars(tmp_path):
    http_port, grpc_port = promh.free_port(), promh.free_port()
    config = {
        "collectors": only_collectors("loadavg"),
        "otlp": {"http_listen": f"127.0.0.1:{http_port}", "grpc_listen": f"127.0.0.1:{grpc_port}"},
        "explain": {"slo": {"ttft": "500ms"}},
    }
    start = time.time()
    with Agent.start(tmp_path / "agent", config) as agent:
        sent = []
        tp = provider(HttpExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces"))
        for ttft in (0.003, 0.03, 0.3, 0.9):
            sent.append(emit_llm_request(tp, ttft=ttft, queue=0.001, prefill=ttft / 2))
        tp.shutdown()
        tp = provider(GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True))
        sent.append(emit_llm_request(tp, ttft=2.0, queue=0.5, prefill=1.0))
        tp.shutdown()

        with promh.Prometheus.start({"infernode": [f"127.0.0.1:{agent.port}"]}, tmp_path / "prom",
                                    extra_flags=["--enable-feature=exemplar-storage"]) as prom:
            prom.wait_for_target_up("infernode", timeout=30)
            prom.wait_for_series("infernode_request_ttft_seconds_count >= 5", timeout=30)
            deadline = time.monotonic() + 30
            got: set[str] = set()
            while time.monotonic() < deadline and got != set(sent):
                series = prom.query_exemplars("infernode_request_ttft_seconds_bucket", start - 60, time.time() + 60)
                got = {ex["labels"]["trace_id"] for s in series for ex in s["exemplars"]}
                time.sleep(0.5)
            # Five requests in five distinct TTFT buckets: each bucket's exemplar is its request.
            assert got == set(sent)
            by_le = {s["seriesLabels"]["le"]: s["exemplars"][-1] for s in series}
            assert by_le["0.005"]["labels"]["trace_id"] == sent[0]
            assert float(by_le["2.5"]["value"]) == pytest.approx(2.0)

        # The same traces, explained by the running agent through the CLI.
        url = f"http://127.0.0.1:{agent.port}"
        res = run_cli("explain", sent[-1], "--url", url, "--json")
        assert res.returncode == 0, res.stderr
        (req,) = json.loads(res.stdout)["requests"]
        assert req["latency_seconds"]["ttft"] == pytest.approx(2.0)
        assert req["slow"][0]["phase"] == "ttft" and req["slow"][0]["basis"] == "slo"
        res = run_cli("slow", "--since", "10m", "--url", url)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("2 slow of 5 requests")  # ttft 0.9 s and 2.0 s are over 500 ms
        assert sent[-1] in res.stdout and sent[3] in res.stdout
