"""Node bring-up: NVIDIA driver and libraries pinned by a manifest (plan, apply, verify)."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from agent.config_types import Duration


class BootstrapSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest: Path = Path("/etc/infernode/manifest.yaml")
    # Operator overrides merged over the manifest, in order.
    overrides: list[Path] = Field(default_factory=list)
    # How often the daemon re-reads package state (dpkg-query/rpm run in a thread,
    # never on the scrape path); GPU hotplug triggers a refresh too.
    refresh_interval: Duration = Field(default=300.0, gt=0)


class BootstrapConfig(Protocol):
    """The part of the agent's config the bootstrap subsystem reads."""

    @property
    def bootstrap(self) -> BootstrapSettings: ...
