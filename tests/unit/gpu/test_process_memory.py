"""pid -> unit attribution of GPU memory, on a fixture /proc."""

from __future__ import annotations

from agent.paths import Paths
from collectors.gpu.process_memory import UNKNOWN_UNIT, UnitResolver, memory_by_unit


def _proc(root, pid: int, text: str) -> None:
    d = root / "proc" / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup").write_text(text)


def test_memory_summed_per_unit(tmp_path) -> None:
    _proc(tmp_path, 10, "0::/inference.slice/vllm-worker@0.service\n")
    _proc(tmp_path, 11, "0::/inference.slice/vllm-worker@0.service\n")
    _proc(tmp_path, 12, "1:name=systemd:/system.slice/docker-abc.scope\n0::/\n")
    r = UnitResolver(Paths(tmp_path))
    got = memory_by_unit(r, [(10, 100), (11, 50), (12, 7), (13, 1)])
    assert got == {"vllm-worker@0.service": 150, "docker-abc.scope": 7, UNKNOWN_UNIT: 1}


def test_resolution_cached_until_pid_leaves_every_gpu(tmp_path) -> None:
    _proc(tmp_path, 10, "0::/a.slice/one.service\n")
    r = UnitResolver(Paths(tmp_path))
    assert r.unit_of(10) == "one.service"
    _proc(tmp_path, 10, "0::/a.slice/two.service\n")  # pid reused by another process
    r.forget_except({10})
    assert r.unit_of(10) == "one.service", "still cached while the pid stays on a GPU"
    r.forget_except(set())
    assert r.unit_of(10) == "two.service"
