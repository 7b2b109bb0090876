"""The cost ledger's metric declarations (one place, see agent/catalog.py)."""

from __future__ import annotations

from agent.catalog import MetricSpec, MetricType

_W = ("worker", "model_name")
_SRC = "agent cost ledger (worker units, NVML utilization and energy, vLLM spans)"

WORKER_GPU_SECONDS_TOTAL = MetricSpec(
    "infernode_worker_gpu_seconds_total", MetricType.COUNTER,
    "GPU-seconds the worker held: each of its GPUs while its unit was active (starting, serving, draining).",
    unit="seconds", labels=_W, source=_SRC
)
WORKER_GPU_BUSY_SECONDS_TOTAL = MetricSpec(
    "infernode_worker_gpu_busy_seconds_total", MetricType.COUNTER,
    "Held GPU-seconds weighted by the GPUs' utilization (NVML's coarse busy fraction).",
    unit="seconds", labels=_W, source=_SRC
)
WORKER_GPU_IDLE_SECONDS_TOTAL = MetricSpec(
    "infernode_worker_gpu_idle_seconds_total", MetricType.COUNTER,
    "Held GPU-seconds in which the worker served no request (none in flight at vLLM's scrapes, none finished).",
    unit="seconds", labels=_W, source=_SRC
)
WORKER_ENERGY_JOULES_TOTAL = MetricSpec(
    "infernode_worker_energy_joules_total", MetricType.COUNTER,
    "Energy of the GPUs the worker held, from their energy counters, while it held them.",
    unit="joules", labels=_W, source=_SRC
)
WORKER_COST_TOTAL = MetricSpec(
    "infernode_worker_cost_total", MetricType.COUNTER,
    "What the worker's GPUs cost in the configured currency (infernode_cost_info), at list prices: "
    "held GPU-hours (component gpu) and their energy (component energy). Absent until priced and above 0.",
    labels=(*_W, "component"), source=_SRC
)
GPU_HELD = MetricSpec(
    "infernode_gpu_held", MetricType.GAUGE,
    "Whether an active worker holds the GPU (1) or none does (0): a GPU paid for but given to nobody.",
    labels=("gpu",), source=_SRC
)
COST_INFO = MetricSpec(
    "infernode_cost_info", MetricType.GAUGE,
    "Constant 1 naming the currency of every cost the agent reports; absent when no price is configured.",
    unit="info", labels=("currency",), source="cost: in the agent's config"
)
COST_BUDGET = MetricSpec(
    "infernode_cost_budget_per_million_tokens", MetricType.GAUGE,
    "The configured budget per million tokens (prompt + completion), for InfernodeCostPerTokenOverBudget.",
    source="cost.budget_per_million_tokens"
)

COST_SPECS = (
    WORKER_GPU_SECONDS_TOTAL,
    WORKER_GPU_BUSY_SECONDS_TOTAL,
    WORKER_GPU_IDLE_SECONDS_TOTAL,
    WORKER_ENERGY_JOULES_TOTAL,
    WORKER_COST_TOTAL,
    GPU_HELD,
    COST_INFO,
    COST_BUDGET,
)
