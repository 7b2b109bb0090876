from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.config_types import ConnectionSettings, Duration, ListenAddress, Size
from agent.settings import ServerSettings
from agent.worker.settings import WorkerSettings


class ForwardSettings(BaseModel):
    """Where enriched spans go next (the fleet's OpenTelemetry collector)."""

    model_config = ConfigDict(extra="forbid")

    # OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces; unset: no forwarding.
    endpoint: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    batch_spans: int = Field(default=512, ge=1, le=100_000)
    interval: Duration = 1.0
    timeout: Duration = 5.0
    # Spans held while the upstream is slow or down; beyond it the oldest are dropped and counted.
    queue_spans: int = Field(default=20_000, ge=1)
    max_retries: int = Field(default=5, ge=0, le=100)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an OTLP/HTTP URL like http://collector:4318/v1/traces")
        return v


class OtlpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    grpc_listen: ListenAddress = "127.0.0.1:4317"
    http_listen: ListenAddress = "127.0.0.1:4318"
    # The largest export request accepted, compressed or not (OTLP/HTTP 413, gRPC RESOURCE_EXHAUSTED).
    # At most 256 MiB: gRPC takes its receive limit as an int32, and the agent sets it
    # to a few times this.
    max_payload: Size = Field(default=4 * 1024 * 1024, gt=0, le=256 * 1024 * 1024)
    # Each receiver's connection limits. For gRPC, `max` is gRPC's own cap (it refuses
    # the connection beyond it without telling the agent, so those are not counted),
    # and `header_timeout` bounds the HTTP/2 set-up.
    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    # An OTLP/HTTP export's body must arrive within this (a trickled body is 408, counted `body_timeout`).
    body_timeout: Duration = Field(default=30.0, gt=0, le=3600)
    forward: ForwardSettings = Field(default_factory=ForwardSettings)


class SloSettings(BaseModel):
    """Per-phase latency objectives (seconds); a request above any is slow. Unset: none."""

    model_config = ConfigDict(extra="forbid")

    ttft: Duration | None = None
    tpot: Duration | None = None
    queue: Duration | None = None
    prefill: Duration | None = None
    decode: Duration | None = None
    e2e: Duration | None = None


class EngineExplainSettings(BaseModel):
    """The engine's own causes (agent/tracing/engine_causes.py) and the per-worker
    load timeline they read (agent/tracing/engine_load.py)."""

    model_config = ConfigDict(extra="forbid")

    # Requests kept: per worker those that ended within `horizon` of its newest, at most
    # `requests` for all workers together (about 450 bytes each).
    horizon: Duration = Field(default=60.0, gt=0, le=3600)
    requests: int = Field(default=50_000, ge=100, le=1_000_000)
    # A request teaches the unloaded baseline once this long after it ended: vLLM exports
    # spans about 5 s late, so its neighbours have arrived by then.
    settle: Duration = Field(default=10.0, ge=0, le=600)
    # Requests that decoded alone before the unloaded TPOT is trusted (batch interference
    # is not named before), and requests before a prompt counts as typical.
    baseline_min_samples: int = Field(default=20, ge=1, le=10_000)
    # vLLM's KV-cache usage (0-1) at which queue time counts as KV-cache pressure.
    kv_full: float = Field(default=0.9, gt=0, le=1.0)
    # A prompt this many times the worker's typical one is long for it.
    long_prompt_ratio: float = Field(default=4.0, ge=1.0, le=1000.0)


class ExplainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = None
    slo: SloSettings = Field(default_factory=SloSettings)
    # Requests kept for `infernode explain` / `slow`, newest first; older ones are forgotten.
    keep_requests: int = Field(default=10_000, ge=1, le=1_000_000)
    # Rolling p99 per worker and phase over this many recent requests; a request is judged
    # against it only once `p99_min_requests` have been seen (a p99 of 10 samples is noise).
    p99_window: int = Field(default=1000, ge=10, le=100_000)
    p99_min_requests: int = Field(default=100, ge=10)
    # Events shorter than this are attached as evidence but are not worth naming as a cause.
    min_cause: Duration = 0.001
    # A timed cause that explains less than this share of the request's e2e is evidence,
    # listed under the verdict, not a cause: a clean request's 1-10 ms background waits
    # are real but did not make it slow, and "no known cause" is then the honest verdict.
    min_cause_share: float = Field(default=0.05, ge=0.0, le=1.0)
    # A span whose e2e is longer than this is not a request's (counted invalid).
    max_e2e: Duration = Field(default=21600.0, gt=0, le=31 * 86400)
    engine: EngineExplainSettings = Field(default_factory=EngineExplainSettings)


class TracingConfig(Protocol):
    """The part of the agent's config the tracing subsystem and `infernode explain` read."""

    @property
    def otlp(self) -> OtlpSettings: ...
    @property
    def explain(self) -> ExplainSettings: ...
    @property
    def workers(self) -> list[WorkerSettings]: ...
    @property
    def server(self) -> ServerSettings: ...
