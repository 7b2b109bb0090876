"""The agent's own config sections: the server, logging, the event store.

Plugin sections are declared by their plugins (a collector's `settings_model`,
`tuning/settings.py`, ...); the composition root (agent/plugins.py) puts them all
into one `Config` model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.config_types import ConnectionSettings, Duration, ListenAddress, Size


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(Section):
    listen: ListenAddress = ":9480"
    # Budget for one collector's run inside a scrape; Prometheus' default scrape
    # timeout is 10s, so the whole scrape answers well inside it.
    collector_timeout: Duration = 3.0
    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "text"] = "auto"


class EventSettings(Section):
    max_bytes: Size = Field(default=64 * 1024 * 1024, gt=0)
