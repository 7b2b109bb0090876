"""Reading procfs, sysfs and cgroupfs files with errors that name the file."""

from __future__ import annotations

from pathlib import Path

from agent.collector import NoDataError


def read_text(path: Path) -> str:
    """The file's text; ValueError naming the file when it is not UTF-8 (a corrupt
    or binary file must fail its collector with a reason a person can act on)."""
    try:
        return path.read_text()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not text (undecodable byte at offset {e.start})") from None


def read_source(path: Path, fix: str = "") -> str:
    """A collector's main source: NoDataError when it does not exist on this host."""
    try:
        return read_text(path)
    except FileNotFoundError:
        raise NoDataError(f"{path} does not exist", fix) from None


def read_optional(path: Path) -> str | None:
    """Text, or None when the file (or a cgroup, which can vanish between listing
    and reading) does not exist."""
    try:
        return read_text(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
