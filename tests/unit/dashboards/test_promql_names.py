import pytest

from tests.harness.promql import metric_names


@pytest.mark.parametrize("expr,names", [
    ('histogram_quantile(0.99, sum by (le, worker) (rate(infernode_request_ttft_seconds_bucket{worker=~"$worker"}[$__rate_interval])))',
     {"infernode_request_ttft_seconds_bucket"}),
    ("infernode_gpu_up == 0", {"infernode_gpu_up"}),
    ('sum without (cpu) (rate(infernode_host_cpu_seconds_total{mode!="idle"}[5m])) / on(instance) group_left count(infernode_host_cpu_seconds_total)',
     {"infernode_host_cpu_seconds_total"}),
    ("increase(infernode_gpu_xid_errors_total{xid=~\"79|95\"}[10m]) > 0", {"infernode_gpu_xid_errors_total"}),
    ("rate(vllm:e2e_request_latency_seconds_sum[1m]) / rate(vllm:e2e_request_latency_seconds_count[1m])",
     {"vllm:e2e_request_latency_seconds_sum", "vllm:e2e_request_latency_seconds_count"}),
    ("max_over_time(infernode_collector_up[5m] offset 1h) unless infernode_build_info", {"infernode_collector_up", "infernode_build_info"}),
])
def test_metric_names(expr, names):
    assert metric_names(expr) == names
