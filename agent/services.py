"""What one part of the agent offers another while it runs, typed.

Each field is a provider that some collector or subsystem publishes while it
runs, and None while it does not: the GPU collector's topology and open throttle
windows, the eBPF collector's scope refresh and wait-sum drain, the worker
supervisor's model names and start-up phases, the tuning loop's inference CPUs.
A consumer reads the field and copes with None. Every provider is a bound method
of its publisher, so the runtime and the daemon can take back everything a
collector or subsystem published when it stops (`withdraw`): a reload that turns
GPU collection off leaves no method of the old collector behind.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.events import Event
from agent.topology import NodeTopology
from agent.usage import GpuUsage, TokenTotals, WorkerHolding


@dataclass
class Services:
    # GPU collector: () -> the GPUs and NICs, as its NVML session sees them (the span scope).
    gpu_topology: Callable[[], NodeTopology] | None = None
    # GPU collector: throttle and clock-drop windows still open, ending now (correlation).
    gpu_open_events: Callable[[], list[Event]] | None = None
    # GPU collector: NVML index of a GPU UUID, None when unknown (the worker's fault reaction).
    gpu_index_of_uuid: Callable[[str], int | None] | None = None
    # GPU collector: each fresh GPU's model, utilization and energy counter, by NVML index (the cost ledger).
    gpu_usage: Callable[[], dict[int, GpuUsage]] | None = None
    # eBPF collector: re-read the inference cgroups into the tid map; returns the thread count.
    ebpf_refresh_scope: Callable[[], int] | None = None
    # eBPF collector: write the kernel's wait sums as events now; returns how many were added.
    ebpf_drain_pressure: Callable[[], int] | None = None
    # Worker supervisor: a managed worker's model name.
    worker_model_of: Callable[[str], str | None] | None = None
    # Worker supervisor: (worker, span name, start ns, end ns) of a start-up span.
    worker_startup_phase: Callable[[str, str, int, int], None] | None = None
    # Worker supervisor: each managed worker's GPUs, whether its unit holds them, its requests in flight.
    worker_holdings: Callable[[], list[WorkerHolding]] | None = None
    # Span pipeline: tokens and requests of finished requests so far, by worker (the cost ledger).
    request_token_totals: Callable[[], dict[str, TokenTotals]] | None = None
    # Tuning loop: drift windows still open, ending now (correlation context).
    tuning_open_events: Callable[[], list[Event]] | None = None
    # Tuning loop: the inference CPU set of the applied profile, None when it has none.
    tuning_inference_cpus: Callable[[], Sequence[int] | None] | None = None

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def withdraw(self, owner: object) -> list[str]:
        """Clear every provider that is a bound method of `owner`; the names cleared."""
        cleared = []
        with self._lock:
            for f in dataclasses.fields(self):
                if f.name.startswith("_"):
                    continue
                value: object = getattr(self, f.name)
                if callable(value) and getattr(value, "__self__", None) is owner:
                    setattr(self, f.name, None)
                    cleared.append(f.name)
        return cleared

    def published(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if not f.name.startswith("_") and getattr(self, f.name)]
