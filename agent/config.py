"""The agent's configuration: YAML, validated, with errors a person can act on.

Every section rejects unknown keys. A collector's section is its own
`settings_model`, so a new collector brings its keys with it and the schema stays
one source. Errors name the file, the key path, the bad value and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agent.config_types import ConnectionSettings, Duration, ListenAddress, Size
from agent.yamlfile import YamlFileError, quote, read_yaml_file

DEFAULT_CONFIG_PATH = Path("/etc/infernode/infernode.yaml")

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


class ConfigError(Exception):
    """A config that cannot be used; `lines` are the individual problems."""

    def __init__(self, source: str, lines: list[str]) -> None:
        self.source = source
        self.lines = lines
        super().__init__("\n".join(f"{source}: {line}" for line in lines))


def _collectors_model() -> type[BaseModel]:
    from collectors.registry import collector_classes

    fields: dict[str, Any] = {
        cls.name: (cls.settings_model, Field(default_factory=cls.settings_model)) for cls in collector_classes()
    }
    return create_model("CollectorsSettings", __config__=ConfigDict(extra="forbid"), **fields)


def _config_model() -> type[BaseModel]:
    from agent.bootstrap.settings import BootstrapSettings
    from agent.tracing.settings import ExplainSettings, OtlpSettings
    from agent.worker.settings import Workers
    from tuning.settings import TuningSettings

    collectors = _collectors_model()
    return create_model(
        "Config",
        __config__=ConfigDict(extra="forbid"),
        server=(ServerSettings, Field(default_factory=ServerSettings)),
        log=(LogSettings, Field(default_factory=LogSettings)),
        events=(EventSettings, Field(default_factory=EventSettings)),
        collectors=(collectors, Field(default_factory=collectors)),
        tuning=(TuningSettings, Field(default_factory=TuningSettings)),
        bootstrap=(BootstrapSettings, Field(default_factory=BootstrapSettings)),
        workers=(Workers, Field(default_factory=list)),
        otlp=(OtlpSettings, Field(default_factory=OtlpSettings)),
        explain=(ExplainSettings, Field(default_factory=ExplainSettings)),
    )


# The model is built on first use, not at import, because it asks the collector
# registry for each collector's settings.
Config = Any


def parse_config(data: object, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"top level: expected a mapping of sections, got {type(data).__name__}"])
    try:
        return _config_model().model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, [_describe(err) for err in e.errors()]) from None


def load_config(path: Path | None) -> Config:
    """Load `path`; with None, the default path when it exists, else defaults."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return parse_config({}, "<defaults>")
        path = DEFAULT_CONFIG_PATH
    source = str(path)
    try:
        data = read_yaml_file(Path(path))
    except YamlFileError as e:
        raise ConfigError(source, [str(e)]) from None
    return parse_config(data, source)


def default_config() -> Config:
    return parse_config({}, "<defaults>")


def _describe(err: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "top level"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    msg = str(err.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    value = err.get("input")
    shown = "" if kind == "missing" else f" (got {quote(value)})"
    if isinstance(value, dict) and kind not in ("missing",):
        shown = ""
    return f"{path}: {msg}{shown}"
