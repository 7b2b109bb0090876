"""The agent's own metric declarations: the collector runtime, the process and its
event store, and its HTTP listeners (see agent/catalog.py)."""

from __future__ import annotations

from agent.catalog import MetricSpec, MetricType

COLLECTOR_UP = MetricSpec(
    "infernode_collector_up",
    MetricType.GAUGE,
    "Whether the collector's last run succeeded (1) or failed, timed out or found no data (0).",
    labels=("collector",),
    source="agent runtime",
)
COLLECTOR_DURATION_SECONDS = MetricSpec(
    "infernode_collector_duration_seconds",
    MetricType.GAUGE,
    "Wall time of the collector's last run.",
    unit="seconds",
    labels=("collector",),
    source="agent runtime",
)
COLLECTOR_DROPPED_SAMPLES_TOTAL = MetricSpec(
    "infernode_collector_dropped_samples_total",
    MetricType.COUNTER,
    "Samples a collector produced that did not match the metric catalog and were dropped.",
    labels=("collector",),
    source="agent runtime",
)
RUNTIME_SPECS = (
    COLLECTOR_UP,
    COLLECTOR_DURATION_SECONDS,
    COLLECTOR_DROPPED_SAMPLES_TOTAL,
)

BUILD_INFO = MetricSpec(
    "infernode_build_info", MetricType.GAUGE, "Agent version; constant 1.",
    unit="info", labels=("version",), source="agent"
)
START_TIME_SECONDS = MetricSpec(
    "infernode_start_time_seconds", MetricType.GAUGE, "When the agent process started, Unix time.",
    unit="seconds", source="agent"
)
PROCESS_RESIDENT_MEMORY_BYTES = MetricSpec(
    "infernode_process_resident_memory_bytes", MetricType.GAUGE, "Resident memory of the agent process.",
    unit="bytes", source="/proc/self/statm via psutil"
)
PROCESS_CPU_SECONDS_TOTAL = MetricSpec(
    "infernode_process_cpu_seconds_total", MetricType.COUNTER, "CPU time the agent process used, user plus system.",
    unit="seconds", source="/proc/self/stat via psutil"
)
CONFIG_RELOAD_FAILURES_TOTAL = MetricSpec(
    "infernode_config_reload_failures_total", MetricType.COUNTER,
    "Config reloads (SIGHUP) that failed: the new config was invalid (the old one kept running), or "
    "a subsystem it turns on did not start (the rest of it was applied).",
    source="agent"
)
CONFIG_LAST_RELOAD_SUCCESS = MetricSpec(
    "infernode_config_last_reload_success", MetricType.GAUGE,
    "Whether the last config reload was applied in full (1) or failed (0).", source="agent"
)
EVENTS_STORED = MetricSpec(
    "infernode_events_stored", MetricType.GAUGE, "Events currently held in the event store.",
    source="agent event store"
)
EVENTS_STORE_BYTES = MetricSpec(
    "infernode_events_store_bytes", MetricType.GAUGE,
    "Estimated memory held by the event store (bounded by events.max_bytes).",
    unit="bytes", source="agent event store"
)
EVENTS_EVICTED_TOTAL = MetricSpec(
    "infernode_events_evicted_total", MetricType.COUNTER,
    "Events evicted from the store, oldest first, to stay within its memory bound.",
    source="agent event store"
)
EVENTS_ADDED_TOTAL = MetricSpec(
    "infernode_events_added_total", MetricType.COUNTER, "Events added to the store, by kind.",
    labels=("kind",), source="agent event store"
)
SELF_SPECS = (
    BUILD_INFO,
    START_TIME_SECONDS,
    PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_CPU_SECONDS_TOTAL,
    CONFIG_RELOAD_FAILURES_TOTAL,
    CONFIG_LAST_RELOAD_SUCCESS,
    EVENTS_STORED,
    EVENTS_STORE_BYTES,
    EVENTS_EVICTED_TOTAL,
    EVENTS_ADDED_TOTAL,
)

HTTP_CONNECTIONS = MetricSpec(
    "infernode_http_connections", MetricType.GAUGE,
    "Connections open on an agent listener (server: the agent's HTTP port; otlp_http: the OTLP/HTTP receiver).",
    labels=("listener",), source="agent HTTP listener"
)
HTTP_CONNECTIONS_CLOSED_TOTAL = MetricSpec(
    "infernode_http_connections_closed_total", MetricType.COUNTER,
    "Connections the agent closed itself, by reason: over_capacity (answered 503 on arrival), "
    "header_timeout (request headers not complete in time).",
    labels=("listener", "reason"), source="agent HTTP listener"
)
LISTENER_SPECS = (
    HTTP_CONNECTIONS,
    HTTP_CONNECTIONS_CLOSED_TOTAL,
)
