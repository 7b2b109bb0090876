"""What the cost ledger reads from the rest of the agent, as plain values: which
GPUs each worker holds, what each GPU did, and how many tokens each worker served.
Published through agent/services.py by the worker supervisor, the GPU collector
and the span pipeline; read by agent/cost."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerHolding:
    worker: str
    model_name: str  # the served model, "" until the worker has said
    gpus: tuple[int, ...]  # NVML indices
    active: bool  # the worker's unit is active (starting, serving or draining): it holds its GPUs
    in_flight: float | None  # running + waiting requests at vLLM's last scrape; None when unknown
    # When the unit last left and last entered "inactive" (CLOCK_MONOTONIC seconds, as
    # time.monotonic()), from systemd; None when systemd did not say. They bound the
    # time held more closely than the supervisor's ticks can.
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class GpuUsage:
    model_name: str  # the board, as NVML names it
    utilization: float | None  # 0..1 over NVML's last sample period; None when not answered
    energy_joules: float | None  # the GPU's energy counter; None when not supported


@dataclass(frozen=True)
class TokenTotals:
    prompt: int
    completion: int
    requests: int
