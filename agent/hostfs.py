"""Reading and writing host files: one set of rules for every part of the agent.

Reads name the file when it is not text, and say which absences are expected.
Writes are atomic and durable: the new content goes to a temporary file beside
the target, is flushed to disk, renamed over the target, and the directory entry
is flushed too, so a crash or power loss leaves the old file or the new one,
never a torn one. The tuning state, the worker drop-ins under /run/systemd and
the bootstrap's repository and modprobe files all go through `write_atomic`.

Paths come from agent.paths.Paths; nothing here chooses one.
"""

from __future__ import annotations

import os
from pathlib import Path


def read_text(path: Path) -> str:
    """The file's text; ValueError naming the file when it is not UTF-8 (a corrupt
    or binary file must fail its reader with a reason a person can act on)."""
    try:
        return path.read_text()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not text (undecodable byte at offset {e.start})") from None


def read_optional(path: Path) -> str | None:
    """Text, or None when the file (or a cgroup, which can vanish between listing
    and reading) does not exist. Other errors are raised."""
    try:
        return read_text(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_if_readable(path: Path) -> str | None:
    """Text, or None when the file cannot be read at all (absent, no permission,
    not text): for values that are only ever hints, such as sysfs attributes."""
    try:
        return read_text(path)
    except (OSError, ValueError):
        return None


def temp_path(path: Path) -> Path:
    """Where `write_atomic` stages the new content of `path`."""
    return path.with_name(f".{path.name}.tmp")


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably (see the module's
    docstring). The parent directory is created (0o755) when missing. On failure
    the target is untouched and the temporary file removed."""
    body = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # O_CREAT's mode is narrowed by the umask
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_if_changed(path: Path, data: bytes | str, mode: int = 0o644) -> bool:
    """`write_atomic` unless `path` already holds exactly `data`; whether it wrote."""
    body = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == body:
            return False
    except (FileNotFoundError, NotADirectoryError):
        pass
    write_atomic(path, body, mode)
    return True
