"""One loaded set of eBPF programs shared by the module's tests (clang runs once).

The inference scope is a test cgroup in the v1 cpu hierarchy (this host is hybrid),
named in the collector's config exactly as a node would name inference.slice.
"""

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.paths import Paths
from agent.samples import HistogramValue
from agent.telemetry import Telemetry
from tests.harness import waiting

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
MEM_ROOT = Path("/sys/fs/cgroup/memory")


def _rm_cgroup(d: Path) -> None:
    for child in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _evacuate(child)
        child.rmdir()
    _evacuate(d)
    d.rmdir()


def _evacuate(d: Path) -> None:
    parent_tasks = CPU_ROOT / "tasks"
    for tid in (d / "tasks").read_text().split():
        try:
            parent_tasks.write_text(tid)
        except OSError:
            pass  # exited meanwhile


@contextmanager
def limited_memory_cgroup(tag: str, limit_bytes: int = 48 << 20) -> Iterator[Path]:
    """A v1 memory cgroup with a hard limit: what a process in it allocates past the
    limit it reclaims itself (memcg reclaim), or is OOM-killed for."""
    if not (MEM_ROOT / "tasks").exists():
        pytest.skip("no v1 memory cgroup hierarchy here")
    d = MEM_ROOT / f"{tag}-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    (d / "memory.limit_in_bytes").write_text(str(limit_bytes))
    try:
        yield d
    finally:
        for tid in (d / "tasks").read_text().split():
            try:
                (MEM_ROOT / "tasks").write_text(tid)
            except OSError:
                pass
        for _ in range(50):
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.1)


@pytest.fixture(scope="session")
def inference_cgroup():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not (CPU_ROOT / "tasks").exists():
        pytest.skip("no v1 cpu cgroup hierarchy here")
    d = CPU_ROOT / f"ebpf-test-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    yield d
    _rm_cgroup(d)


@pytest.fixture(scope="session")
def ebpf(inference_cgroup):
    """(node, collector) with every program loaded."""
    cfg = parse_config({"collectors": {**only_ebpf(), "ebpf": {
        "enabled": True,
        "inference_cgroups": [str(inference_cgroup)],
        "scope_refresh": "500ms",
        "cache_max_age": 0,
        # Low enough that the tests' loop-device writes and page-cache reclaim
        # become events too.
        "io_threshold": "50us",
        "reclaim_threshold": "0s",
        "tcp_local_port_ranges": {"inference": "8000-8099", "ebpftest": "40100-40199"},
    }}})
    node = Telemetry.build(cfg, Paths("/"))
    node.runtime.start()
    collector = next(c for c in node.runtime.collectors if c.name == "ebpf")
    assert collector.loaded.wait(180), "eBPF programs did not finish loading"
    down = {n: s.reason for n, s in collector.state.items() if not s.up}
    assert not down, f"programs down: {down}"
    yield node, collector
    node.runtime.stop()


def only_ebpf() -> dict:
    """Config entries switching every other collector off, so a test node runs ours alone."""
    from agent.plugins import COLLECTORS

    return {cls.name: {"enabled": False} for cls in COLLECTORS if cls.name != "ebpf"}


def only_programs(*names: str) -> dict[str, bool]:
    """collectors.ebpf.programs switching on `names` and every other program off."""
    from collectors.ebpf.programs import PROGRAMS

    return {p.name: p.name in names for p in PROGRAMS}


def scrape(node) -> dict[tuple[str, tuple], object]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in node.runtime.scrape()}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))), 0.0)


def bucket_count(h: HistogramValue, lo: float, hi: float) -> float:
    """Observations in the bucket whose upper bound is `hi` (previous bound `lo`)."""
    cum = dict(h.buckets)
    return cum[hi] - cum.get(lo, 0.0)


def wait_for(pred, timeout=10.0, interval=0.2):
    """pred()'s first truthy result, or its last falsy one after `timeout` (the caller asserts)."""
    try:
        return waiting.wait_for(pred, timeout, interval=interval)
    except AssertionError:
        return pred()
