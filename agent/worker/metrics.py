"""The worker supervisor's metric declarations (one place, see agent/catalog.py)."""

from __future__ import annotations

from agent.catalog import MetricSpec, MetricType, PassthroughSpec

WORKER_SPECS = (
    MetricSpec("infernode_worker_up", MetricType.GAUGE,
               "Whether the worker's unit is active and its health probes pass (1) or not (0).",
               labels=("worker",), source="systemctl show and the worker's /health"),
    MetricSpec("infernode_worker_restarts_total", MetricType.COUNTER,
               "Restarts of the worker by the agent, by reason (exited, unhealthy, generation_probe).",
               labels=("worker", "reason"), source="agent worker supervisor"),
    MetricSpec("infernode_worker_scrape_up", MetricType.GAUGE,
               "Whether the agent's last scrape of the worker's /metrics succeeded (1) or not (0).",
               labels=("worker",), source="the worker's /metrics"),
    MetricSpec("infernode_worker_scrape_malformed_total", MetricType.COUNTER,
               "Scrapes of the worker's /metrics dropped because the exposition could not be parsed.",
               labels=("worker",), source="the worker's /metrics"),
    MetricSpec("infernode_node_schedulable", MetricType.GAUGE,
               "Whether the node should receive inference traffic (1) or not (0); reason says why not.",
               labels=("reason",), source="agent worker supervisor (GPU lost, XID 79/95)"),
    PassthroughSpec("vllm:", "Re-exposed unchanged from the vLLM worker's /metrics.",
                    added_labels=("worker", "gpus"), source="each worker's /metrics (vLLM)"),
)
