from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class BootstrapSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest: Path = Path("/etc/infernode/manifest.yaml")
