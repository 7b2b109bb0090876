from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from agent.config_types import Duration


class TuningSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # audit: report drift only; enforce: apply and re-apply. Never changes a host unasked.
    mode: Literal["audit", "enforce"] = "audit"
    profile: str = "inference-latency"
    verify_interval: Duration = 60.0
