"""vLLM exposition -> agent exposition -> parsed again: every vllm:* series
survives with its type, labels and value, plus the worker and gpus labels."""

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.catalog import Catalog
from agent.exposition import render
from agent.worker.scrape import MalformedExposition, parse_vllm_metrics
from agent.worker.specs import WORKER_SPECS
from tests.doubles.vllm_standin import TTFT_BUCKETS, Metrics


def _vllm_like_registry() -> bytes:
    """What vLLM's own prometheus_client objects expose."""
    reg = CollectorRegistry()
    labels = ["model_name", "engine"]
    ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                     labels, buckets=TTFT_BUCKETS, registry=reg)
    it = Histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                   labels, buckets=[1, 8, 16, 32], registry=reg)
    gen = Counter("vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=reg)
    ok = Counter("vllm:request_success", "Count of successfully processed requests.",
                 ["model_name", "engine", "finished_reason"], registry=reg)
    run = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.", labels, registry=reg)
    Counter("http_requests", "not vllm", registry=reg).inc()
    for engine in ("0", "1"):
        for v in (0.003, 0.2, 0.2, 9.0, 5000.0):
            ttft.labels("m", engine).observe(v)
        it.labels("m", engine).observe(12)
        gen.labels("m", engine).inc(41)
        ok.labels("m", engine, "stop").inc(3)
        run.labels("m", engine).set(2)
    return generate_latest(reg)


def _series(text: str, prefix: str = "vllm:") -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith(prefix):
            continue
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            out[(fam.type, s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _catalog() -> Catalog:
    c = Catalog()
    c.add("worker", WORKER_SPECS)
    return c


@pytest.mark.parametrize("source", ["prometheus_client", "standin"])
def test_round_trip_exact_with_added_labels(source):
    if source == "prometheus_client":
        text = _vllm_like_registry().decode()
    else:
        m = Metrics("m", 2048)
        for v in (0.01, 0.5, 3000.0):
            m.hist["vllm:time_to_first_token_seconds"].observe(v)
        m.hist["vllm:request_prompt_tokens"].observe(17)
        m.generation_tokens = 7
        m.success["length"] = 2
        m.running = 1
        text = m.render()
    parsed = parse_vllm_metrics(text, "w0", "0,1")
    assert parsed.skipped_families == []
    body, _ = render(parsed.samples, _catalog())
    before = _series(text)
    after = _series(body.decode())
    assert before, "the source must contain vllm:* series"
    expected = {(t, n, tuple(sorted({**dict(lbl), "worker": "w0", "gpus": "0,1"}.items()))): v
                for (t, n, lbl), v in before.items()}
    assert after == expected
    assert not any(n.startswith("http_") for (_, n, _) in after)


def test_openmetrics_rendering_also_round_trips():
    text = _vllm_like_registry().decode()
    body, ctype = render(parse_vllm_metrics(text, "w0", "0").samples, _catalog(), openmetrics=True)
    assert ctype.startswith("application/openmetrics-text")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

    fams = {f.name: f for f in om_parse(body.decode())}
    assert fams["vllm:time_to_first_token_seconds"].type == "histogram"
    assert fams["vllm:generation_tokens"].type == "counter"
    assert fams["vllm:iteration_tokens_total"].type == "histogram"
    inf = [s for s in fams["vllm:time_to_first_token_seconds"].samples
           if s.name.endswith("_bucket") and s.labels["le"] == "+Inf" and s.labels["engine"] == "0"]
    assert inf[0].value == 5


def test_histogram_named_total_stays_a_histogram():
    parsed = parse_vllm_metrics(_vllm_like_registry().decode(), "w", "")
    it = [s for s in parsed.samples if s.name == "vllm:iteration_tokens_total"]
    assert len(it) == 2 and all(not isinstance(s.value, float) for s in it)
    assert it[0].value.buckets[-1] == (math.inf, 1.0)


def test_conflicting_source_label_is_kept_as_exported():
    text = '# TYPE vllm:x gauge\nvllm:x{worker="theirs",model_name="m"} 3\n'
    (s,) = parse_vllm_metrics(text, "w0", "0").samples
    assert s.labels == {"exported_worker": "theirs", "model_name": "m", "worker": "w0", "gpus": "0"}


@pytest.mark.parametrize("bad", [
    "vllm:x{model_name=\"m\" 3\n",                                     # unclosed labels
    "# TYPE vllm:h histogram\nvllm:h_bucket{le=\"1.0\"} 3\nvllm:h_bucket{le=\"+Inf\"} 2\nvllm:h_count 2\n",
    "# TYPE vllm:h histogram\nvllm:h_bucket{le=\"1.0\"} 3\nvllm:h_count 3\n",  # no +Inf
    "vllm:x not-a-number\n",
])
def test_malformed_is_rejected_with_a_reason(bad):
    with pytest.raises(MalformedExposition):
        parse_vllm_metrics(bad, "w0", "0")


def test_unsupported_types_are_skipped_and_named():
    text = "# TYPE vllm:s summary\nvllm:s_count 1\nvllm:s_sum 2\n# TYPE vllm:g gauge\nvllm:g 1\n"
    parsed = parse_vllm_metrics(text, "w0", "0")
    assert parsed.skipped_families == ["vllm:s"]
    assert [s.name for s in parsed.samples] == ["vllm:g"]


def test_vllm_http_server_metrics_are_kept_with_the_worker_label():
    # Dropped by the vllm: filter before (vllm-0.33.md section 3): the 5xx rate, engine-dead
    # 500s included, and durations by handler. Rendered by the stand-in as
    # prometheus-fastapi-instrumentator does.
    from tests.doubles.vllm_standin import HttpMetrics

    http = HttpMetrics()
    http.observe("/v1/completions", "POST", 200, 0.2)
    http.observe("/v1/completions", "POST", 500, 0.01)
    http.observe("/health", "GET", 200, 0.001)
    parsed = parse_vllm_metrics(http.render() + Metrics("m", 64).render(), "w0", "0")
    totals = {(s.labels["status"], s.labels["worker"]): s.value for s in parsed.samples
              if s.name == "http_requests_total"}
    assert totals == {("2xx", "w0"): 1.0, ("5xx", "w0"): 1.0}
    (dur,) = [s for s in parsed.samples if s.name == "http_request_duration_seconds"]
    assert dur.labels == {"handler": "/v1/completions", "method": "POST", "worker": "w0", "gpus": "0"}
    assert dur.value.buckets[-1] == (math.inf, 2.0)
    body, _ = render(parsed.samples, _catalog())
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert fams["http_requests"].type == "counter" and fams["http_request_duration_seconds"].type == "histogram"
    assert {s.labels["worker"] for s in fams["http_requests"].samples} == {"w0"}
