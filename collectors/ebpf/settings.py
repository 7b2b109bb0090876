"""The `collectors.ebpf` config section."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.collector import CollectorSettings
from agent.config_types import Duration


def parse_port_range(text: str, name: str = "") -> tuple[int, int]:
    """"8000-8099" (or "8000") -> (8000, 8099)."""
    lo_s, _, hi_s = str(text).partition("-")
    try:
        lo, hi = int(lo_s), int(hi_s or lo_s)
    except ValueError:
        raise ValueError(f"range {name!r}: expected 'low-high' ports, got {text!r}") from None
    if not (1 <= lo <= hi <= 65535):
        raise ValueError(f"range {name!r}: expected 1 <= low <= high <= 65535, got {text!r}")
    return lo, hi


class ProgramSwitches(BaseModel):
    """Each program on or off on its own."""

    model_config = ConfigDict(extra="forbid")

    runqueue: bool = True
    offcpu: bool = True
    blockio: bool = True
    tcp_retransmit: bool = True
    oom: bool = True
    reclaim: bool = True
    irq: bool = True


class EbpfSettings(CollectorSettings):
    programs: ProgramSwitches = Field(default_factory=ProgramSwitches)
    # Cgroups whose threads are "inference": names under each hierarchy root, or
    # absolute directories under /sys/fs/cgroup.
    inference_cgroups: list[str] = Field(default_factory=lambda: ["inference.slice"])
    scope_refresh: Duration = Field(default=5.0, gt=0)
    runqueue_threshold: Duration = Field(default=0.005, ge=0)
    # Every run-queue wait of an inference thread is summed in the kernel and
    # written as one runqueue_pressure event per scope and CPU this often (0: off).
    runqueue_pressure_interval: Duration = Field(default=0.1, ge=0)
    io_threshold: Duration = Field(default=0.05, ge=0)
    # Every block request an inference thread submits is summed in the kernel (its
    # wait from submission to completion) and written as one io_pressure event per
    # scope and device this often (0: off).
    io_pressure_interval: Duration = Field(default=0.1, ge=0)
    reclaim_threshold: Duration = Field(default=0.01, ge=0)
    # Every reclaim stall of an inference thread is summed in the kernel and written
    # as one reclaim_pressure event per scope and kind (memcg, direct) this often (0: off).
    reclaim_pressure_interval: Duration = Field(default=0.1, ge=0)
    # Off-CPU time is tracked for inference threads only unless this is set (every
    # context switch of every thread then pays a hash update).
    offcpu_all_threads: bool = False
    # Maps are read at most this often; scrapes in between reuse the last read.
    cache_max_age: Duration = Field(default=1.0, ge=0)
    clock_remeasure: Duration = Field(default=60.0, gt=0)
    ringbuf_pages: int = Field(default=64, gt=0)
    max_tracked_threads: int = Field(default=131072, gt=0)
    # Named local port ranges ("lo-hi") retransmits are counted by; the rest are
    # "other". vLLM serves on 8000 by default.
    tcp_local_port_ranges: dict[str, str] = Field(default_factory=lambda: {"inference": "8000-8099"})

    @field_validator("tcp_local_port_ranges")
    @classmethod
    def _port_ranges(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 8:
            raise ValueError(f"at most 8 ranges, got {len(v)}")
        for name, text in v.items():
            parse_port_range(text, name)
            if name == "other" or not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"range name {name!r}: use letters, digits, _ or -, not 'other'")
        return v

    def port_ranges(self) -> list[tuple[str, int, int]]:
        return [(name, *parse_port_range(text, name)) for name, text in self.tcp_local_port_ranges.items()]

    @field_validator("ringbuf_pages")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"must be a power of two (the kernel's ring buffer size rule), got {v}")
        return v


class _HasEbpf(Protocol):
    @property
    def ebpf(self) -> EbpfSettings: ...


class EbpfConfig(Protocol):
    """The part of the agent's config `infernode ebpf` reads."""

    @property
    def collectors(self) -> _HasEbpf: ...
