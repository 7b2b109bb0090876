"""render() writes exactly what prometheus_client's encoders write for the same
families (its object model is the reference), in both formats."""

import math

import pytest
from prometheus_client.exposition import generate_latest as reference_text
from prometheus_client.openmetrics.exposition import ALLOWUTF8
from prometheus_client.openmetrics.exposition import generate_latest as reference_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.utils import floatToGoString

from agent.catalog import Catalog, MetricSpec, MetricType, PassthroughSpec
from agent.exposition import UndeclaredMetricError, _value, build_families, render
from agent.samples import Exemplar, HistogramValue, Sample

COUNTER = MetricSpec("infernode_t_reads_total", MetricType.COUNTER, 'Reads; with "quotes" and a \\ backslash.',
                     labels=("device", "mode"), source="t")
GAUGE = MetricSpec("infernode_t_memory_bytes", MetricType.GAUGE, "Memory.\nSecond line.", unit="bytes",
                   labels=("numa_node",), source="t")
PLAIN = MetricSpec("infernode_t_up", MetricType.GAUGE, "Up.", source="t")
HIST = MetricSpec("infernode_t_latency_seconds", MetricType.HISTOGRAM, "Latency.", unit="seconds",
                  labels=("gpu",), source="t")
PASS = PassthroughSpec(prefix="infernode_pt_", help="Re-exposed.", source="t")
VLLM = PassthroughSpec(prefix="vllm:", help="Re-exposed from vLLM.", source="t")


class Registry:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


@pytest.fixture
def catalog():
    c = Catalog()
    c.add("t", (COUNTER, GAUGE, PLAIN, HIST, PASS, VLLM))
    return c


def samples():
    hv = HistogramValue(
        buckets=((0.001, 0.0), (0.5, 3.0), (1.0, 7.0), (2.5e6, 9.0), (math.inf, 10.0)), sum=12.75,
        exemplars={0.5: Exemplar({"trace_id": "abc123", "span_id": "s1"}, 0.42, 1795000000.5),
                   math.inf: Exemplar({"trace_id": "def456"}, 30.0)},
    )
    return [
        Sample(GAUGE.name, {"numa_node": "1"}, 12345678901.0),
        Sample(GAUGE.name, {"numa_node": "0"}, 0),
        Sample(COUNTER.name, {"device": 'we"ird\\dev\nx', "mode": "read"}, 17,
               exemplar=Exemplar({"trace_id": "t1"}, 1.0)),
        Sample(COUNTER.name, {"mode": "write", "device": "nvme0n1"}, 2.5e-7),
        Sample(PLAIN.name, {}, float("nan")),
        Sample(PLAIN.name, {}, math.inf),
        Sample(PLAIN.name, {}, -math.inf),
        Sample(PLAIN.name, {}, -1234567.5),
        Sample(HIST.name, {"gpu": "0"}, hv),
        Sample(HIST.name, {"gpu": "1"}, HistogramValue(((1.0, 1.0), (math.inf, 1.0)), 0.5)),
        Sample("infernode_pt_requests_total", {"model_name": "m"}, 5.0),
        Sample("infernode_pt_running", {"model_name": "m"}, 2.0),
        Sample("infernode_pt_ttft_seconds", {"model_name": "m"}, HistogramValue(((0.1, 1.0), (math.inf, 2.0)), 0.3)),
        # Re-exposed series of one family may carry different label sets, as in their source.
        Sample("infernode_pt_ttft_seconds", {"model_name": "m", "engine": "1"},
               HistogramValue(((1e-3, 0.0), (2.5e6, 1.0), (math.inf, 1.0)), 9.0)),
        Sample("vllm:num_requests_running", {"model_name": "m", "engine": "0"}, 3.0),
        Sample("vllm:prompt_tokens_total", {"model_name": "m"}, 1e7),
    ]


def test_text_matches_prometheus_client(catalog):
    body, ctype = render(samples(), catalog)
    assert ctype.startswith("text/plain; version=0.0.4")
    assert body.decode() == reference_text(Registry(build_families(samples(), catalog))).decode()


def test_openmetrics_matches_prometheus_client(catalog):
    body, ctype = render(samples(), catalog, openmetrics=True)
    assert ctype.startswith("application/openmetrics-text; version=1.0.0")
    # ALLOWUTF8: prometheus_client's default escaping would rewrite "vllm:" names.
    reference = reference_openmetrics(Registry(build_families(samples(), catalog)), escaping=ALLOWUTF8)
    assert body.decode() == reference.decode()
    families = {f.name: f for f in parse_openmetrics(body.decode())}
    bucket = next(s for s in families[HIST.name].samples if s.labels.get("le") == "0.5" and s.labels["gpu"] == "0")
    assert bucket.exemplar.labels == {"trace_id": "abc123", "span_id": "s1"}


def test_colon_names_stay_whole_in_openmetrics():
    # prometheus_client's own OpenMetrics encoder rewrites "vllm:x" to "vllm_x" in
    # sample lines (not in HELP/TYPE), which a strict parser rejects.
    c = Catalog()
    c.add("vllm", (PassthroughSpec(prefix="vllm:", help="Re-exposed from vLLM.", source="vLLM /metrics"),))
    body, _ = render([Sample("vllm:num_requests_running", {"model_name": "m"}, 2.0),
                      Sample("vllm:prompt_tokens_total", {"model_name": "m"}, 5.0)], c, openmetrics=True)
    text = body.decode()
    assert 'vllm:num_requests_running{model_name="m"} 2.0\n' in text
    assert 'vllm:prompt_tokens_total{model_name="m"} 5.0\n' in text
    names = {f.name: f.type for f in parse_openmetrics(text)}
    assert names == {"vllm:num_requests_running": "gauge", "vllm:prompt_tokens": "counter"}


def test_undeclared_name_is_refused(catalog):
    with pytest.raises(UndeclaredMetricError):
        render([Sample("infernode_nobody_declared", {}, 1.0)], catalog)


@pytest.mark.parametrize("v", [0, 1, -1, 0.5, 1e-9, 123456.0, 1234567.0, 1234567.89, 1e15, 1e16, 1.5e300,
                               -1234567.0, 2**53, math.inf, -math.inf, float("nan"), True])
def test_value_format_is_prometheus_clients(v):
    assert _value(v) == floatToGoString(v)
