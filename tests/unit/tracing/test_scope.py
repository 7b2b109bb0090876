from pathlib import Path

import pytest

from agent.cgroups import parse_ids
from agent.paths import Paths
from agent.services import Services
from agent.topology import GpuInfo, NicInfo, NodeTopology
from agent.tracing.scope import ScopeResolver, worker_of_unit
from agent.worker.settings import WorkerSettings

from .spanfactory import request

CMD = ["vllm", "serve", "m"]
CG = "/inference.slice/infernode-worker@llama.service"


@pytest.mark.parametrize("unit,expected", [
    ("infernode-worker@llama.service", "llama"),
    ("llama.service", "llama"),
    ("vllm-llama.service", "llama"),
    ("other.service", None),
    ("inference.slice", None),
])
def test_worker_of_unit(unit, expected):
    assert worker_of_unit(unit, ["llama", "mistral"]) == expected


def test_parse_pids():
    assert frozenset(parse_ids("1\n22\n\n333\n")) == frozenset({1, 22, 333})



def _topo() -> NodeTopology:
    """The GPU collector's topology service answer: two GPUs on two NUMA nodes."""
    return NodeTopology(
        gpus=[GpuInfo(0, "GPU-aaa", "0000:18:00.0", 0), GpuInfo(1, "GPU-bbb", "0000:af:00.0", 1)],
        nics=[NicInfo("eth0", "0000:19:00.0", 0), NicInfo("eth1", "0000:b0:00.0", 1)],
    )


def _tree(tmp_path: Path) -> Paths:
    proc = tmp_path / "proc" / "4242"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text(f"12:cpu,cpuacct:{CG}\n1:name=systemd:{CG}\n0::/\n")
    cg = tmp_path / "sys/fs/cgroup/systemd" / CG.lstrip("/")
    cg.mkdir(parents=True)
    (cg / "cgroup.procs").write_text("4242\n")
    (cg / "tasks").write_text("4242\n4250\n")  # v1: every thread
    return Paths(tmp_path)


def test_scope_from_pid_on_hybrid_host(tmp_path):
    workers = [WorkerSettings(name="llama", gpus=[1], port=8001, command=CMD), WorkerSettings(name="other", command=CMD)]
    res = ScopeResolver(_tree(tmp_path), workers, Services(gpu_topology=_topo))
    s = res.scope(request(pid=4242, service="vllm"))
    assert s.worker == "llama" and s.cgroup == CG
    assert s.pids == frozenset({4242, 4250}) and s.gpus == ("GPU-bbb",) and s.port == 8001
    assert s.nics == ("eth1",)  # on the NUMA node of GPU 1
    assert "nic:eth1" in s.subjects() and "gpu:GPU-bbb" in s.subjects()


def test_scope_without_topology_means_any_gpu(tmp_path):
    res = ScopeResolver(_tree(tmp_path), [WorkerSettings(name="llama", gpus=[0], command=CMD)])
    assert res.scope(request(pid=4242)).gpus is None


def test_scope_gone_pid_single_worker(tmp_path):
    res = ScopeResolver(_tree(tmp_path), [WorkerSettings(name="llama", command=CMD)])
    s = res.scope(request(pid=999999))
    assert s.worker == "llama" and s.cgroup is None


def test_scope_by_service_name(tmp_path):
    res = ScopeResolver(_tree(tmp_path), [WorkerSettings(name="a", command=CMD), WorkerSettings(name="b", command=CMD)])
    assert res.scope(request(pid=None, service="b")).worker == "b"
    assert res.scope(request(pid=None, service="vllm")).worker == "vllm"


def test_cgroup_lookup_is_cached(tmp_path):
    t = [0.0]
    paths = _tree(tmp_path)
    res = ScopeResolver(paths, [WorkerSettings(name="llama", command=CMD)], clock=lambda: t[0], ttl_s=5)
    assert res.scope(request(pid=4242)).cgroup == CG
    (tmp_path / "proc/4242/cgroup").write_text("0::/elsewhere.service\n")
    assert res.scope(request(pid=4242)).cgroup == CG
    t[0] = 6.0
    assert res.scope(request(pid=4242)).cgroup == "/elsewhere.service"


def test_a_reload_of_the_workers_drops_cached_scopes(tmp_path):
    res = ScopeResolver(_tree(tmp_path), [WorkerSettings(name="llama", gpus=[1], port=8001, command=CMD)],
                        Services(gpu_topology=_topo), clock=lambda: 0.0)
    assert res.scope(request(pid=4242)).port == 8001
    res.workers = {"llama": WorkerSettings(name="llama", gpus=[0], port=8002, command=CMD)}
    s = res.scope(request(pid=4242))
    assert (s.port, s.gpus) == (8002, ("GPU-aaa",))


def test_scope_by_the_service_name_the_drop_in_sets(tmp_path):
    # The drop-in sets OTEL_SERVICE_NAME=vllm-NAME and vLLM passes it through
    # (vllm-0.33.md item 6): with two workers and no usable pid, that names the worker.
    workers = [WorkerSettings(name="a", command=CMD), WorkerSettings(name="b", command=CMD, port=8001, gpus=[1])]
    res = ScopeResolver(_tree(tmp_path), workers)
    for pid in (None, 999999):  # no pid on the resource; a pid the agent cannot see
        assert res.scope(request(pid=pid, service="vllm-b")).worker == "b"
        assert res.scope(request(pid=pid, service="vllm-a")).port == 8000
    assert res.scope(request(pid=None, service="vllm-c")).worker == "vllm-c"  # unmanaged
    assert res.managed_worker(None, "vllm-c") is None and res.managed_worker(None, "vllm-b") == "b"
