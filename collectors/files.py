"""A collector's main source file: NoDataError when it does not exist on this host
(reading itself is agent.hostfs's)."""

from __future__ import annotations

from pathlib import Path

from agent.collector import NoDataError
from agent.hostfs import read_text


def read_source(path: Path, fix: str = "") -> str:
    """A collector's main source: NoDataError when it does not exist on this host."""
    try:
        return read_text(path)
    except FileNotFoundError:
        raise NoDataError(f"{path} does not exist", fix) from None
