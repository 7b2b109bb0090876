"""Supervision of the local vLLM workers under systemd."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.config_types import Duration, Size
from agent.settings import ServerSettings

# vLLM's flags that the agent renders itself; workers[].args must not repeat them.
RENDERED_FLAGS = ("--host", "--port", "--shutdown-timeout", "--otlp-traces-endpoint")
# With tracing on, vLLM 0.33 asserts in its span path that request stats exist
# (v1/engine/output_processor.py do_tracing); --disable-log-stats makes them None,
# so the first finished request kills the engine (vllm#25352, fix #25645 unmerged).
DISABLE_LOG_STATS = "--disable-log-stats"


class HealthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval: Duration = 5.0
    # A hung /health (a wedged HTTP server) must count as unhealthy, so every probe
    # has its own timeout shorter than the interval.
    timeout: Duration = 2.0
    path: str = Field(default="/health", pattern=r"^/")
    # vLLM's /health does not notice a hung engine (vllm#39863): a tiny generation
    # request does. Off when None.
    generation_probe: str | None = Field(default=None, pattern=r"^/")
    generation_timeout: Duration = 10.0
    # Consecutive failed probes before the worker is restarted.
    failures_before_restart: int = Field(default=3, ge=1)
    # Model load can take minutes, during which vLLM refuses connections. vLLM itself
    # waits VLLM_ENGINE_READY_TIMEOUT_S (600 s, vllm/envs.py) for its engine before it
    # gives up, so a shorter grace kills loads vLLM would have finished. Each start-up
    # phase the worker reports (its start-up spans) starts the grace again.
    startup_grace: Duration = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthSettings:
        if self.timeout > self.interval:
            raise ValueError(f"timeout ({self.timeout:g}s) must not exceed interval ({self.interval:g}s)")
        return self


class BackoffSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    initial: Duration = Field(default=5.0, gt=0)
    factor: float = Field(default=2.0, ge=1.0)
    max: Duration = Field(default=300.0, gt=0)
    # A worker healthy this long is considered recovered: its backoff starts over.
    reset_after: Duration = 600.0

    @model_validator(mode="after")
    def _max_at_least_initial(self) -> BackoffSettings:
        if self.max < self.initial:
            raise ValueError(f"max ({self.max:g}s) must be at least initial ({self.initial:g}s)")
        return self


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    gpus: list[int] = Field(default_factory=list)
    port: int = Field(default=8000, ge=1, le=65535)
    # The server executable, e.g. ["/opt/vllm/bin/vllm", "serve", "meta-llama/Llama-3.1-8B"].
    command: list[str] = Field(default_factory=list)
    # Extra arguments appended after the ones the agent adds (--port, --otlp-traces-endpoint,
    # --shutdown-timeout).
    args: list[str] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    # Explicit placement for hosts whose GPU topology the agent cannot read; by default
    # the CPUs and NUMA nodes local to `gpus`.
    cpus: str | None = Field(default=None, pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
    numa_nodes: list[int] | None = None
    memory_high: Size | None = None
    memory_max: Size | None = None
    # vLLM's --shutdown-timeout: SIGTERM drains in-flight requests for up to this long.
    # vLLM parses it as an int (engine/arg_utils.py type=int): whole seconds only.
    shutdown_timeout: Duration = Field(default=30.0, ge=0, le=86400)
    # `infernode drain` waits this long for in-flight requests before stopping.
    drain_timeout: Duration = Field(default=60.0, ge=0, le=86400)
    # vLLM keeps /health at 200 and accepts requests while it drains (it answers them
    # with finish_reason "abort"), so the agent takes the worker out of rotation
    # first: /workers/NAME/ready turns 503, and SIGTERM waits this long for the load
    # balancers to notice (HAProxy's default check, inter 2s x fall 3, takes 6 s;
    # Envoy and cloud balancers are commonly set to 5 s x 3).
    deregister_delay: Duration = Field(default=15.0, ge=0, le=3600)
    tracing: bool = True
    scrape_metrics: bool = True
    # How often vLLM's /metrics is scraped; unset: with each health probe. Its gauges
    # become the engine windows `infernode explain` reads (agent/worker/engine_windows.py),
    # so a shorter interval (1s) dates a full batch or KV cache more closely.
    metrics_interval: Duration | None = Field(default=None, ge=0.1, le=3600)
    health: HealthSettings = Field(default_factory=HealthSettings)
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)

    @property
    def base_url(self) -> str:
        """The worker's HTTP address from this host: a wildcard bind (`0.0.0.0`, empty)
        is reached on 127.0.0.1, an IPv6 address in brackets."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def max_num_seqs(self) -> int | None:
        """vLLM's --max-num-seqs from the command line, when it is there (vLLM's
        default depends on its version and the GPU, so none is assumed)."""
        return max_num_seqs_of([*self.command[1:], *self.args])

    @field_validator("shutdown_timeout")
    @classmethod
    def _whole_seconds(cls, v: float) -> float:
        if not float(v).is_integer():
            raise ValueError(f"{v:g}s is not a whole number of seconds; vLLM takes whole seconds "
                             "(--shutdown-timeout is an int) and would exit at argument parsing")
        return v

    @model_validator(mode="after")
    def _check(self) -> WorkerSettings:
        if not self.command:
            raise ValueError("command: the vLLM server command is required, e.g. [vllm, serve, MODEL]")
        if self.memory_high is not None and self.memory_max is not None and self.memory_high > self.memory_max:
            raise ValueError("memory_high must not exceed memory_max")
        if len(set(self.gpus)) != len(self.gpus) or any(g < 0 for g in self.gpus):
            raise ValueError(f"gpus must be distinct non-negative indexes (got {self.gpus})")
        for key, words in (("command", self.command[1:]), ("args", self.args)):
            for arg in words:
                _check_flag(key, arg.split("=", 1)[0], self.tracing)
        return self


def _check_flag(key: str, flag: str, tracing: bool) -> None:
    if flag == DISABLE_LOG_STATS and tracing:
        raise ValueError(f"{key}: {DISABLE_LOG_STATS} with tracing on kills vLLM's engine at the first "
                         "finished request (its span path needs the stats this flag turns off); "
                         "remove the flag, or set tracing: false for this worker")
    if flag in RENDERED_FLAGS:
        raise ValueError(f"{key}: {flag} is set by the agent (from host, port, shutdown_timeout and otlp); "
                         "set it there instead")


def _unique_names(workers: list[WorkerSettings]) -> list[WorkerSettings]:
    seen: set[str] = set()
    for w in workers:
        if w.name in seen:
            raise ValueError(f"worker name {w.name!r} is declared twice")
        seen.add(w.name)
    ports = [w.port for w in workers]
    for p in set(ports):
        if ports.count(p) > 1:
            raise ValueError(f"port {p} is used by more than one worker")
    return workers


Workers = Annotated[list[WorkerSettings], AfterValidator(_unique_names)]


class _OtlpReceiver(Protocol):
    """Where the agent's OTLP receiver listens, which a managed vLLM is pointed at
    (the tracing plugin's OtlpSettings; described, not imported)."""

    @property
    def enabled(self) -> bool: ...
    @property
    def grpc_listen(self) -> str: ...


class WorkerConfig(Protocol):
    """The part of the agent's config the worker supervisor and `infernode workers` read."""

    @property
    def workers(self) -> list[WorkerSettings]: ...
    @property
    def server(self) -> ServerSettings: ...
    @property
    def otlp(self) -> _OtlpReceiver: ...


def max_num_seqs_of(words: Sequence[str]) -> int | None:
    """vLLM's --max-num-seqs in a command line (`--max-num-seqs N` or `=N`), or None
    when it is absent or not a positive integer."""
    for i, arg in enumerate(words):
        flag, eq, value = arg.partition("=")
        if flag != "--max-num-seqs":
            continue
        if not eq:
            value = words[i + 1] if i + 1 < len(words) else ""
        return int(value) if value.isdigit() and int(value) > 0 else None
    return None
