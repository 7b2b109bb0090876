"""Every host path the agent reads or writes goes through one Paths object.

Tests build a Paths over a fixture tree; production uses the real root. A module
never opens an absolute host path on its own, so a fixture root exercises exactly
the code that runs on a node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path = Path("/")

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def host(self, path: str | os.PathLike[str]) -> Path:
        """Map an absolute host path ("/proc/stat") to its place under root."""
        p = str(path)
        if not p.startswith("/"):
            raise ValueError(f"host path must be absolute: {p!r}")
        if self.root == Path("/"):
            return Path(p)
        return self.root / p.lstrip("/")

    def proc(self, *parts: str | int) -> Path:
        return self.host("/proc").joinpath(*map(str, parts))

    def sys(self, *parts: str | int) -> Path:
        return self.host("/sys").joinpath(*map(str, parts))

    def dev(self, *parts: str | int) -> Path:
        return self.host("/dev").joinpath(*map(str, parts))

    def etc(self, *parts: str | int) -> Path:
        return self.host("/etc").joinpath(*map(str, parts))

    def run(self, *parts: str | int) -> Path:
        return self.host("/run").joinpath(*map(str, parts))

    def cgroup(self, *parts: str | int) -> Path:
        return self.host("/sys/fs/cgroup").joinpath(*map(str, parts))

    def is_real_root(self) -> bool:
        return self.root == Path("/")
