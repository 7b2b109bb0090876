"""systemd.cpu_affinity in a booted systemd (Debian under systemd-nspawn): after
`infernode tune apply`, a service started in system.slice runs only on the
housekeeping CPUs (its /proc/PID/status says so), and so does PID 1; after
`infernode tune rollback` a new service may run everywhere again, PID 1 too, and
the drop-in is gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import need_root
from tests.harness.agent_root import agent_binds, install_agent

pytestmark = pytest.mark.integration

CONFIG = """
server:
  listen: 127.0.0.1:9480
collectors:
  ebpf:
    enabled: false
"""
PROFILE = "description: systemd's default CPU affinity only\ntunables:\n  systemd.cpu_affinity: housekeeping\n"
DROPIN = "/etc/systemd/system.conf.d/50-infernode-housekeeping.conf"
INFERNODE = "/opt/infernode/bin/infernode"


def _install(root: Path) -> None:
    install_agent(root, CONFIG)
    (root / "etc/infernode/profiles").mkdir(parents=True, exist_ok=True)
    (root / "etc/infernode/profiles/housekeeping-only.yaml").write_text(PROFILE)


@pytest.fixture(scope="module")
def box():
    need_root()
    if not shutil.which("systemd-nspawn"):
        pytest.skip("systemd-nspawn missing (make setup installs systemd-container)")
    from tests.harness.nspawn import booted

    with booted(prefix="hk", binds_ro=agent_binds(), setup=_install) as c:
        try:
            yield c
        except BaseException:
            print(c.journal(lines=100))
            raise


def _allowed(c, pid: str) -> str:
    status = c.run("cat", f"/proc/{pid}/status").stdout
    return next(line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list"))


def _probe(c, name: str) -> str:
    c.run("systemd-run", f"--unit={name}", "--property=Type=exec", "/bin/sleep", "300")
    pid = c.show(f"{name}.service", "MainPID")["MainPID"]
    try:
        return _allowed(c, pid)
    finally:
        c.run("systemctl", "stop", f"{name}.service", check=False)


def test_new_services_run_on_housekeeping_cpus_until_rollback(box):
    c = box
    everywhere = c.run("cat", "/sys/devices/system/cpu/online").stdout.strip()
    plan = json.loads(c.run(INFERNODE, "tune", "plan", "--json", "--profile", "housekeeping-only").stdout)
    row = next(r for r in plan["rows"] if r["tunable"] == "systemd.cpu_affinity")
    housekeeping = row["desired"]
    assert row["current"] == everywhere
    if housekeeping == everywhere:
        pytest.skip(f"every CPU ({everywhere}) is a housekeeping CPU here: nothing to keep apart")
    assert _probe(c, "probe-before") == everywhere
    res = c.run(INFERNODE, "tune", "apply", "--profile", "housekeeping-only", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    try:
        assert _probe(c, "probe-applied") == housekeeping, "a new service in system.slice"
        assert _allowed(c, "1") == housekeeping, "the manager itself"
        assert f"CPUAffinity={housekeeping}" in c.run("cat", DROPIN).stdout.replace(" ", ",")
    finally:
        res = c.run(INFERNODE, "tune", "rollback", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _probe(c, "probe-rolled-back") == everywhere
    assert _allowed(c, "1") == everywhere
    assert c.run("test", "-e", DROPIN, check=False).returncode != 0
