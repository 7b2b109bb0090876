"""Annotated field types shared by every config section."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from agent.units import parse_duration, parse_listen, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def _check_listen(v: str) -> str:
    parse_listen(v)
    return v


ListenAddress = Annotated[str, AfterValidator(_check_listen)]


class ConnectionSettings(BaseModel):
    """Limits on one listener's connections (the agent's HTTP port, the OTLP receivers)."""

    model_config = ConfigDict(extra="forbid")

    # Connections held open at once; one more is answered 503 and closed, and counted.
    max: int = Field(default=256, ge=1, le=65536)
    # From a request's first byte until its headers are complete (a trickling client).
    header_timeout: Duration = Field(default=10.0, gt=0, le=3600)
    # A kept-alive connection with no request for this long is closed. Prometheus'
    # scrape interval must be shorter for it to reuse connections.
    idle_timeout: Duration = Field(default=75.0, gt=0, le=86400)
