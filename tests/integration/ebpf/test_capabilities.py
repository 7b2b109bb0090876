"""A program that cannot run is off with a reason; the agent keeps running."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.paths import Paths
from agent.telemetry import Telemetry
from collectors.ebpf.programs import PROGRAMS

from .conftest import scrape, value

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
INFERNODE = REPO / ".venv" / "bin" / "infernode"
DROP_ALL = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
# Root's uid without a single capability: the other way an agent lacks CAP_BPF.
DROP_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


def unprivileged() -> tuple[list[str], str]:
    """(command prefix, what the probe must call it): the nobody user when it can reach
    this checkout's venv, else (a checkout under a 0700 directory, as `mktemp -d`
    makes) root's uid stripped of every capability."""
    if subprocess.run([*DROP_ALL, "test", "-x", str(INFERNODE)]).returncode == 0:
        return DROP_ALL, "not root"
    return DROP_CAPS, "root without the capabilities"


def host_root_without(tmp_path: Path, tracepoint: str) -> Path:
    """A root whose tracefs has the programs' tracepoints but one; /proc and headers are the host's."""
    events = Path("/sys/kernel/tracing/events")
    for tp in {tp for p in PROGRAMS for tp in p.tracepoints} - {tracepoint}:
        rel = tp.replace(":", "/")
        d = tmp_path / "sys/kernel/tracing/events" / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / "format").symlink_to(events / rel / "format")
    (tmp_path / "proc").symlink_to("/proc")
    (tmp_path / "lib").symlink_to("/lib")
    return tmp_path


def test_missing_tracepoint_turns_only_its_program_off(tmp_path, caplog):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = host_root_without(tmp_path, "oom:mark_victim")
    switches = {n: n in ("oom", "irq") for n in
                ("runqueue", "offcpu", "blockio", "tcp_retransmit", "oom", "reclaim", "irq")}
    cfg = parse_config({"collectors": {"ebpf": {"enabled": True, "programs": switches}}})
    node = Telemetry.build(cfg, Paths(root))
    caplog.set_level("WARNING")
    node.runtime.start()
    try:
        c = next(c for c in node.runtime.collectors if c.name == "ebpf")
        assert c.loaded.wait(120)
        s = scrape(node)
        assert value(s, "infernode_ebpf_program_up", program="oom") == 0
        assert value(s, "infernode_ebpf_program_up", program="irq") == 1
        assert value(s, "infernode_ebpf_program_up", program="runqueue") == 0  # disabled in config
        assert value(s, "infernode_collector_up", collector="ebpf") == 1
        rows = {r.item: r for r in c.doctor()}
        assert rows["oom"].status == "warn" and "oom:mark_victim missing" in rows["oom"].detail
        assert rows["irq"].status == "ok" and rows["runqueue"].status == "off"
        lines = [r.getMessage() for r in caplog.records if "ebpf program oom is off" in r.getMessage()]
        assert len(lines) == 1 and "fix:" in lines[0]
    finally:
        node.runtime.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def world_readable_dir():
    # pytest's tmp_path lives under a 0700 directory the dropped user cannot enter.
    with tempfile.TemporaryDirectory(prefix="ebpf-unpriv-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


def test_unprivileged_daemon_serves_with_every_program_down(world_readable_dir):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    tmp_path = world_readable_dir
    drop, who = unprivileged()
    port = free_port()
    cfg = tmp_path / "infernode.yaml"
    cfg.write_text(f"server: {{listen: '127.0.0.1:{port}'}}\ncollectors: {{ebpf: {{enabled: true}}}}\n")
    log = open(tmp_path / "log", "w")
    proc = subprocess.Popen([*drop, str(INFERNODE), "run", "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, cwd="/")
    try:
        body = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "log").read_text()
                time.sleep(0.2)
        assert 'infernode_collector_up{collector="ebpf"} 1.0' in body
        for program in ("runqueue", "offcpu", "blockio", "tcp_retransmit", "oom", "reclaim", "irq"):
            assert f'infernode_ebpf_program_up{{program="{program}"}} 0.0' in body
        assert proc.poll() is None  # still serving
        text = (tmp_path / "log").read_text()
        assert text.count("ebpf program runqueue is off") == 1 and "CAP_BPF" in text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    status = subprocess.run([*drop, str(INFERNODE), "ebpf", "status", "--json"],
                            capture_output=True, text=True, cwd="/")
    assert status.returncode == 0, status.stderr
    assert '"state": "down"' in status.stdout and who in status.stdout


def test_status_as_root_says_every_program_can_load(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    cfg = tmp_path / "infernode.yaml"
    cfg.write_text("collectors: {ebpf: {enabled: true, programs: {irq: false}}}\n")
    res = subprocess.run([str(INFERNODE), "ebpf", "status", "--json", "--config", str(cfg)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    states = {p["program"]: p["state"] for p in out["programs"]}
    assert out["collector_enabled"] is True
    assert states.pop("irq") == "disabled"
    assert set(states.values()) == {"ready"}
