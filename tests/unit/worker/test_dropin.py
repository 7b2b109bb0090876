from pathlib import Path

import pytest

from agent.paths import Paths
from agent.worker.dropin import BSP_ENV, otlp_endpoint, quote_exec_arg, render_dropin, vllm_args
from agent.worker.placement import Placement, SysfsPlacement
from agent.worker.settings import WorkerSettings

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "worker" / "golden"


def _sysfs(root: Path, gpus: dict[str, tuple[int, str]], nodes: dict[int, str], other: tuple[str, ...] = ()) -> Paths:
    """A PCI tree: gpus maps BDF -> (numa_node, local_cpulist); `other` are non-GPU devices."""
    devs = root / "sys/bus/pci/devices"
    for bdf, (node, cpus) in gpus.items():
        d = devs / bdf
        d.mkdir(parents=True)
        (d / "vendor").write_text("0x10de\n")
        (d / "class").write_text("0x030200\n")
        (d / "numa_node").write_text(f"{node}\n")
        (d / "local_cpulist").write_text(f"{cpus}\n")
    for bdf in other:
        d = devs / bdf
        d.mkdir(parents=True)
        (d / "vendor").write_text("0x8086\n")
        (d / "class").write_text("0x020000\n")
        (d / "numa_node").write_text("0\n")
    for n, cpus in nodes.items():
        d = root / f"sys/devices/system/node/node{n}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpus + "\n")
    return Paths(root)


# A two-socket 8-GPU box: GPUs 0-3 on node 0 (CPUs 0-31,64-95), 4-7 on node 1.
TWO_SOCKET = {
    **{f"0000:{0x18 + i:02x}:00.0": (0, "0-31,64-95") for i in range(4)},
    **{f"0000:{0x9a + i:02x}:00.0": (1, "32-63,96-127") for i in range(4)},
}


def _check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from golden (run with --update-golden if intended)"


def test_two_socket_gpus_on_node1_pinned_to_node1_inference_cpus(tmp_path, update_golden):
    paths = _sysfs(tmp_path, TWO_SOCKET, {0: "0-31,64-95", 1: "32-63,96-127"}, other=("0000:00:1f.6",))
    # The tuning engine keeps CPUs 32-35 for housekeeping on node 1.
    inference = [c for c in range(128) if c not in (32, 33, 34, 35)]
    placement = SysfsPlacement(paths, inference_cpus=inference).placement([4, 5])
    assert placement == Placement(tuple(range(36, 64)) + tuple(range(96, 128)), (1,))
    w = WorkerSettings(
        name="llama70b", gpus=[4, 5], port=8001,
        command=["/opt/vllm/bin/vllm", "serve", "meta-llama/Llama-3.1-70B-Instruct"],
        args=["--tensor-parallel-size", "2", "--served-model-name", "llama 70b"],
        memory_high="200GiB", memory_max="240GiB", shutdown_timeout="30s",
        environment={"HF_HOME": "/var/lib/hf", "VLLM_LOGGING_PREFIX": "100%"},
    )
    text = render_dropin(w, placement, otlp_endpoint(":4317"))
    _check_golden("llama70b.conf", text, update_golden)


def test_gpus_spanning_both_sockets_bind_both_nodes(tmp_path, update_golden):
    paths = _sysfs(tmp_path, TWO_SOCKET, {0: "0-31,64-95", 1: "32-63,96-127"})
    placement = SysfsPlacement(paths).placement([3, 4])
    assert placement.numa_nodes == (0, 1)
    assert placement.cpus == tuple(range(128))
    w = WorkerSettings(name="wide", gpus=[3, 4], command=["vllm", "serve", "m"], tracing=True)
    _check_golden("wide.conf", render_dropin(w, placement, otlp_endpoint("127.0.0.1:4317")), update_golden)


def test_no_topology_no_tracing_renders_no_pinning(update_golden):
    w = WorkerSettings(name="cpu-only", command=["vllm", "serve", "m"])
    text = render_dropin(w, Placement(), None)
    assert "CPUAffinity" not in text and "NUMAPolicy" not in text and "CUDA_VISIBLE_DEVICES" not in text
    assert "--otlp-traces-endpoint" not in text
    _check_golden("cpu-only.conf", text, update_golden)


def test_unknown_numa_node_falls_back_to_local_cpus_only(tmp_path):
    paths = _sysfs(tmp_path, {"0000:01:00.0": (-1, "0-7")}, {})
    assert SysfsPlacement(paths).placement([0]) == Placement((0, 1, 2, 3, 4, 5, 6, 7), ())


def test_housekeeping_only_gpu_keeps_inference_set(tmp_path):
    paths = _sysfs(tmp_path, {"0000:01:00.0": (0, "0-1")}, {0: "0-1"})
    assert SysfsPlacement(paths, inference_cpus=[2, 3]).placement([0]).cpus == (2, 3)


def test_gpu_index_beyond_tree_is_ignored(tmp_path):
    paths = _sysfs(tmp_path, {"0000:01:00.0": (0, "0-3")}, {0: "0-3"})
    assert SysfsPlacement(paths).placement([0, 7]) == Placement((0, 1, 2, 3), (0,))


def test_vllm_args_order_and_quoting():
    w = WorkerSettings(name="w", port=9000, command=["vllm", "serve", "m"], args=["--max-model-len", "4096"],
                       shutdown_timeout=12)
    assert vllm_args(w, "http://127.0.0.1:4317") == [
        "vllm", "serve", "m", "--host", "127.0.0.1", "--port", "9000", "--shutdown-timeout", "12",
        "--otlp-traces-endpoint", "http://127.0.0.1:4317", "--max-model-len", "4096",
    ]
    assert quote_exec_arg("a b") == '"a b"'
    assert quote_exec_arg('say "hi"') == '"say \\"hi\\""'
    assert quote_exec_arg("$HOME") == "$$HOME"
    assert quote_exec_arg("50%") == "50%%"


@pytest.mark.parametrize("listen,url", [(":4317", "http://127.0.0.1:4317"), ("0.0.0.0:4317", "http://127.0.0.1:4317"),
                                        ("[::1]:4317", "http://[::1]:4317"), ("10.0.0.5:5317", "http://10.0.0.5:5317")])
def test_otlp_endpoint(listen, url):
    assert otlp_endpoint(listen) == url


def test_tracing_off_drops_endpoint_and_env():
    w = WorkerSettings(name="quiet", command=["vllm", "serve", "m"], tracing=False)
    text = render_dropin(w, Placement(), "http://127.0.0.1:4317")
    assert "otlp" not in text.lower()


def test_tracing_sets_the_batch_processor_and_service_name():
    w = WorkerSettings(name="w7", command=["vllm", "serve", "m"])
    text = render_dropin(w, Placement(), "http://127.0.0.1:4317")
    for key, value in BSP_ENV.items():
        assert f'Environment="{key}={value}"' in text
    assert 'Environment="OTEL_SERVICE_NAME=vllm-w7"' in text
    # The batch must fit what the receiver accepts: 512 spans of about 1 KiB under 4 MiB.
    assert int(BSP_ENV["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"]) * 1024 < 4 * 1024 * 1024
    assert int(BSP_ENV["OTEL_BSP_MAX_QUEUE_SIZE"]) > 2048  # more than the SDK's default
