"""The agent's configuration: YAML, validated, with errors a person can act on.

The model itself (`Config`) is declared by the composition root, agent/plugins.py,
from the sections the agent and its plugins declare; this module reads a file
into it and words what is wrong. Errors name the file, the key path, the bad value
and what was expected.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from agent.plugins import Config
from agent.validation import describe
from agent.yamlfile import YamlFileError, read_yaml_file

DEFAULT_CONFIG_PATH = Path("/etc/infernode/infernode.yaml")


class ConfigError(Exception):
    """A config that cannot be used; `lines` are the individual problems."""

    def __init__(self, source: str, lines: list[str]) -> None:
        self.source = source
        self.lines = lines
        super().__init__("\n".join(f"{source}: {line}" for line in lines))


def parse_config(data: object, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"top level: expected a mapping of sections, got {type(data).__name__}"])
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, [describe(err) for err in e.errors()]) from None


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
