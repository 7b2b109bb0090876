from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agent.config_types import ListenAddress


class OtlpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    grpc_listen: ListenAddress = "127.0.0.1:4317"
    http_listen: ListenAddress = "127.0.0.1:4318"


class ExplainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = None
