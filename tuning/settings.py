"""Host tuning: tunables, profiles, and the plan/apply/verify/rollback engine."""
from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.config_types import Duration


class TuningSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # audit: report drift only; enforce: apply and re-apply. Never changes a host unasked.
    mode: Literal["audit", "enforce"] = "audit"
    profile: str = "inference-latency"
    verify_interval: Duration = Field(default=60.0, gt=0)
    # Operators' own profiles; searched before the shipped ones, so a same-named
    # profile here replaces ours.
    profile_dirs: list[str] = Field(default_factory=lambda: ["/etc/infernode/profiles"])
    # Single keys over the profile: {"nic.mtu": 9000}; null drops a key from the profile.
    overrides: dict[str, str | int | None] = Field(default_factory=dict)
    # Interfaces to tune; empty: the NICs on the GPUs' NUMA nodes (all PCI NICs without GPUs).
    nics: list[str] = Field(default_factory=list)
    # CPUs kept for IRQs, the agent and the OS, as a kernel CPU list ("0-1,32-33").
    # Unset: the first `housekeeping_cores_per_node` cores (with SMT siblings) of each node.
    housekeeping_cpus: str | None = None
    housekeeping_cores_per_node: int = Field(default=1, ge=0)
    # Block devices for read_ahead_kb (names under /sys/block); empty: the device
    # holding `model_store` when set, else every NVMe namespace.
    block_devices: list[str] = Field(default_factory=list)
    model_store: str | None = None

    @field_validator("housekeeping_cpus")
    @classmethod
    def _cpulist(cls, v: str | None) -> str | None:
        if v is not None:
            from agent.cpulist import parse_cpulist

            parse_cpulist(v)
        return v


class TuningConfig(Protocol):
    """The part of the agent's config the tuning subsystem and `infernode tune` read."""

    @property
    def tuning(self) -> TuningSettings: ...
