"""The worker supervisor's metric declarations (one place, see agent/catalog.py)."""

from __future__ import annotations

from agent.catalog import MetricSpec, MetricType, PassthroughSpec
from agent.worker.scrape import ADDED_LABELS

WORKER_UP = MetricSpec(
    "infernode_worker_up", MetricType.GAUGE,
    "Whether the worker's unit is active and its health probes pass (1) or not (0).",
    labels=("worker",), source="systemctl show and the worker's /health"
)
WORKER_READY = MetricSpec(
    "infernode_worker_ready", MetricType.GAUGE,
    "Whether the worker should receive requests (1): serving and healthy; 0 while starting, "
    "draining, unhealthy or stopped. GET /workers/NAME/ready answers the same for load balancers.",
    labels=("worker",), source="agent worker supervisor"
)
WORKER_INFO = MetricSpec(
    "infernode_worker_info", MetricType.GAUGE,
    "Constant 1 naming the worker's vLLM version (GET /version) and served model (GET /v1/models).",
    unit="info", labels=("worker", "vllm_version", "model_name"), source="the worker's /version and /v1/models"
)
WORKER_STARTUP_PHASE_SECONDS = MetricSpec(
    "infernode_worker_startup_phase_seconds", MetricType.GAUGE,
    "How long each phase of the worker's latest start took (load weights, compile graph, capture "
    "model, ...), from vLLM's start-up spans.",
    unit="seconds", labels=("worker", "phase"), source="vLLM start-up spans via the agent's OTLP receiver"
)
WORKER_RESTARTS_TOTAL = MetricSpec(
    "infernode_worker_restarts_total", MetricType.COUNTER,
    "Restarts of the worker by the agent, by reason (exited, unhealthy, generation_probe).",
    labels=("worker", "reason"), source="agent worker supervisor"
)
WORKER_SCRAPE_UP = MetricSpec(
    "infernode_worker_scrape_up", MetricType.GAUGE,
    "Whether the agent's last scrape of the worker's /metrics succeeded (1) or not (0).",
    labels=("worker",), source="the worker's /metrics"
)
WORKER_SCRAPE_MALFORMED_TOTAL = MetricSpec(
    "infernode_worker_scrape_malformed_total", MetricType.COUNTER,
    "Scrapes of the worker's /metrics dropped because the exposition could not be parsed.",
    labels=("worker",), source="the worker's /metrics"
)
NODE_SCHEDULABLE = MetricSpec(
    "infernode_node_schedulable", MetricType.GAUGE,
    "Whether the node should receive inference traffic (1) or not (0); reason says why not.",
    labels=("reason",), source="agent worker supervisor (GPU lost, XID 79/95)"
)
# vLLM's HTTP server metrics (prometheus-fastapi-instrumentator): the 5xx rate,
# engine-dead 500s included, and request durations by handler.
WORKER_SPECS = (
    WORKER_UP,
    WORKER_READY,
    WORKER_INFO,
    WORKER_STARTUP_PHASE_SECONDS,
    WORKER_RESTARTS_TOTAL,
    WORKER_SCRAPE_UP,
    WORKER_SCRAPE_MALFORMED_TOTAL,
    NODE_SCHEDULABLE,
    PassthroughSpec("vllm:", "Re-exposed unchanged from the vLLM worker's /metrics.",
                    added_labels=ADDED_LABELS, source="each worker's /metrics (vLLM)"),
    PassthroughSpec("http_requests_total", "Re-exposed from the vLLM worker's /metrics: HTTP requests by "
                    "handler, method and status class.", added_labels=ADDED_LABELS,
                    source="each worker's /metrics (vLLM's HTTP server)"),
    PassthroughSpec("http_request_duration_seconds", "Re-exposed from the vLLM worker's /metrics: HTTP "
                    "request durations by handler and method.", added_labels=ADDED_LABELS,
                    source="each worker's /metrics (vLLM's HTTP server)"),
)
