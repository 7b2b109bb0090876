"""Building a collector over a fixture root and reading its samples, for unit tests."""

from __future__ import annotations

from pathlib import Path

from agent.collector import Collector, CollectorContext
from agent.config import default_config
from agent.events import EventStore
from agent.paths import Paths


def make_collector(cls: type[Collector], root: Path, **settings) -> Collector:
    config = default_config()
    base = config.collectors.of(cls)
    return cls(CollectorContext(paths=Paths(root), events=EventStore(1 << 20),
                                settings=base.model_copy(update=settings)))


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def series(samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
