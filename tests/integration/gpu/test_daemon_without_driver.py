"""The real daemon on this host (no NVIDIA driver): the GPU collector reports
nvml_up 0, the rest of the agent keeps serving."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_daemon_serves_without_gpu_driver(tmp_path) -> None:
    import ctypes.util

    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("this host has an NVIDIA driver")
    port = _free_port()
    cfg = tmp_path / "infernode.yaml"
    cfg.write_text(f'server: {{listen: "127.0.0.1:{port}"}}\ncollectors: {{gpu: {{poll_interval: 200ms}}}}\n')
    proc = subprocess.Popen([sys.executable, "-c", "from agent.cli import main; main()", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert "infernode_gpu_nvml_up 0.0" in body
        assert 'infernode_collector_up{collector="gpu"} 0.0' in body
        assert 'infernode_collector_up{collector="loadavg"} 1.0' in body
        assert "infernode_gpu_up{" not in body
        body2 = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "infernode_gpu_nvml_up 0.0" in body2 and proc.poll() is None
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert out.count("no GPU telemetry") <= 1, "said once"
