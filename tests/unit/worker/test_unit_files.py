import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO

SYSTEMD = REPO / "systemd"


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_every_capability_is_justified_and_dangerous_ones_absent():
    text = (SYSTEMD / "infernode.service").read_text()
    caps = _directives(text)["CapabilityBoundingSet"][0].split()
    assert caps, "the bounding set must not be empty"
    for cap in caps:
        assert re.search(rf"^#\s+{cap}\s+\S", text, re.M), f"{cap} has no comment saying why"
    for cap in ("CAP_SYS_MODULE", "CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_SYS_RAWIO", "CAP_SETUID"):
        assert cap not in caps


def test_agent_unit_hardening_and_notify():
    d = _directives((SYSTEMD / "infernode.service").read_text())
    assert d["Type"] == ["notify"] and d["WatchdogSec"] and d["Restart"] == ["on-failure"]
    assert d["ProtectSystem"] == ["strict"] and d["ProtectHome"] == ["yes"]
    assert d["PrivateTmp"] == ["yes"] and d["NoNewPrivileges"] == ["yes"]
    assert d["ExecStart"] == ["/opt/infernode/bin/infernode run"]
    # drop-ins are written under /run/systemd/system; the rest via Runtime/StateDirectory
    assert "-/run/systemd/system" in d["ReadWritePaths"]
    assert d["RuntimeDirectory"] == ["infernode"] and d["StateDirectory"] == ["infernode"]


def test_worker_template_stops_slower_than_vllm_drains():
    d = _directives((SYSTEMD / "infernode-worker@.service").read_text())
    assert d["Slice"] == ["inference.slice"] and d["LimitMEMLOCK"] == ["infinity"]
    assert d["KillSignal"] == ["SIGTERM"] and d["KillMode"] == ["mixed"]
    assert d["Restart"] == ["no"]
    from agent.worker.settings import WorkerSettings

    default_shutdown = WorkerSettings(name="x", command=["vllm"]).shutdown_timeout
    assert float(d["TimeoutStopSec"][0]) > default_shutdown


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", ["inference.slice", "infernode-worker@.service"])
def test_systemd_analyze_verify_on_host(unit):
    # infernode.service is verified inside the booted container, where its ExecStart exists.
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(SYSTEMD / unit)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr
