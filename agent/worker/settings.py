from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    gpus: list[int] = Field(default_factory=list)
    port: int = Field(default=8000, ge=1, le=65535)
    command: list[str] = Field(default_factory=list)
