"""The engine on the 2-socket, 8-GPU fixture tree (copied per test)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.paths import Paths
from tests.conftest import need_root
from tuning.engine import build_engine, rollback
from tuning.settings import TuningSettings
from tuning.state import APPLYING, load_state, state_path

from .conftest import invoke, tree

GOLDEN = Path(__file__).parent / "golden"


def cfg(tmp_path: Path, **tuning) -> str:
    path = tmp_path / "infernode.yaml"
    tuning.setdefault("profile_dirs", [])
    path.write_text(yaml.safe_dump({"tuning": tuning}))
    return str(path)


def tune(root: Path, config: str, *args: str):
    return invoke("tune", args[0], "--root", str(root), "--config", config, *args[1:])


@pytest.mark.parametrize("profile", ["inference-latency", "inference-throughput"])
def test_plan_golden(tmp_path, root, update_golden, profile):
    result = tune(root, cfg(tmp_path), "plan", "--json", "--profile", profile)
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    golden = GOLDEN / f"plan-{profile}-2s8g.json"
    if update_golden:
        golden.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(golden.read_text())


def test_plan_table_lists_each_knob_once(tmp_path, root):
    result = tune(root, cfg(tmp_path), "plan")
    lines = result.output.splitlines()
    assert lines[1].split() == ["TUNABLE", "TARGET", "CURRENT", "DESIRED", "ACTION"]
    keys = [tuple(line.split()[:2]) for line in lines[2:]]
    assert len(keys) == len(set(keys))
    assert ("cpu.governor", "cpu31") in keys and ("nic.irq_affinity", "ens1f0np0/irq123") in keys


def test_apply_then_verify_clean(tmp_path, root):
    config = cfg(tmp_path)
    assert tune(root, config, "verify").exit_code == 1
    result = tune(root, config, "apply")
    assert result.exit_code == 0, result.output
    assert "set vm.swappiness system: 60 -> 10" in result.output
    assert "hold cpu.dma_latency_us system" in result.output
    assert "no changes" not in result.output and "knob(s) changed" in result.output
    verify = tune(root, config, "verify")
    assert verify.exit_code == 0, verify.output
    assert (root / "sys/devices/system/cpu/cpu17/cpufreq/scaling_governor").read_text() == "performance\n"
    assert (root / "proc/sys/net/ipv4/tcp_rmem").read_text() == "4096 131072 16777216\n"
    assert (root / "proc/irq/122/smp_affinity_list").read_text() == "0,16\n"
    assert (root / "sys/block/nvme1n1/queue/scheduler").read_text() == "none\n"
    assert 'IRQBALANCE_BANNED_CPULIST="1-7,9-15,17-23,25-31"' in (root / "etc/default/irqbalance").read_text()
    assert load_state(Paths(root)).status == "applied"
    again = tune(root, config, "apply")
    assert again.exit_code == 0 and "no changes" in again.output


def test_rollback_restores_byte_for_byte_and_is_idempotent(tmp_path, root):
    config = cfg(tmp_path)
    before = tree(root)
    raw_before = {p: (root / p).read_bytes() for p in before}
    assert tune(root, config, "apply").exit_code == 0
    assert tree(root) != before
    # A second profile on top: rollback must still reach the host's first originals.
    assert tune(root, config, "apply", "--profile", "inference-throughput").exit_code == 0
    assert (root / "proc/sys/vm/dirty_ratio").read_text() == "40\n"
    result = tune(root, config, "rollback")
    assert result.exit_code == 0 and "restored" in result.output
    assert tree(root) == before
    plain = {p: b for p, b in raw_before.items() if not isinstance(before[p], str)}
    assert {p: (root / p).read_bytes() for p in plain} == plain
    assert not state_path(Paths(root)).exists()
    second = tune(root, config, "rollback")
    assert second.exit_code == 0 and "nothing to roll back" in second.output
    assert tree(root) == before


def test_write_failing_midway_leaves_every_knob_at_its_original(tmp_path, root):
    need_root()
    config = cfg(tmp_path)
    before = tree(root)
    # Root ignores file modes; the immutable attribute refuses even root's write,
    # while reads still work, so the plan succeeds and the apply fails midway.
    victim = root / "proc/sys/net/core/netdev_max_backlog"
    subprocess.run(["chattr", "+i", str(victim)], check=True)
    try:
        result = tune(root, config, "apply")
    finally:
        subprocess.run(["chattr", "-i", str(victim)], check=True)
    assert result.exit_code == 1
    assert "net.core.netdev_max_backlog system" in result.output
    assert "restored" in result.output and "could NOT" not in result.output
    assert tree(root) == before
    assert not state_path(Paths(root)).exists()


CRASHING_RUN = """
import os, signal, sys
from agent.paths import Paths
from tuning.engine import build_engine
from tuning.settings import TuningSettings

engine = build_engine(Paths(sys.argv[1]), TuningSettings(profile_dirs=[]))
todo = [r for r in engine.plan() if r.action == "set"]
tx = engine.begin(todo)
for row in todo[: int(sys.argv[2])]:
    tx.step(row)
os.kill(os.getpid(), signal.SIGKILL)  # dies between writes: no commit, no rollback
"""


def crash_midway(root: Path, steps: int) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(root), str(steps)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[3])
    assert proc.returncode == -9, proc.stderr
    assert load_state(Paths(root)).status == APPLYING


def test_crash_after_saving_originals_is_repaired_on_next_apply(tmp_path, root):
    config = cfg(tmp_path)
    before = tree(root)
    crash_midway(root, 40)
    assert tree(root) != before
    result = tune(root, config, "apply")
    assert result.exit_code == 0, result.output
    assert "left by an unfinished run" in result.output
    assert tune(root, config, "verify").exit_code == 0
    assert tune(root, config, "rollback").exit_code == 0
    assert tree(root) == before


def test_crash_is_restored_at_daemon_start_in_audit_mode(tmp_path, root):
    import asyncio

    from agent.config import parse_config
    from agent.daemon import Daemon
    from agent.plugins import subsystem_classes
    from tuning.subsystem import TuningSubsystem

    before = tree(root)
    crash_midway(root, 10)
    daemon = Daemon(parse_config({"tuning": {"profile_dirs": []}}), None, Paths(root), subsystem_classes())
    sub = next(s for s in daemon.subsystems if isinstance(s, TuningSubsystem))

    async def run():
        await sub.start()
        await sub.stop()

    asyncio.run(run())
    assert tree(root) == before
    assert not state_path(Paths(root)).exists()


def test_overrides_from_config(tmp_path, root):
    config = cfg(tmp_path, overrides={"nic.mtu": 9000, "nic.irq_affinity": None})
    rows = json.loads(tune(root, config, "plan", "--json").output)["rows"]
    mtu = [r for r in rows if r["tunable"] == "nic.mtu"]
    assert mtu == [{"tunable": "nic.mtu", "target": "ens1f0np0", "current": "1500", "desired": "9000",
                    "action": "set", "note": ""}]
    assert not [r for r in rows if r["tunable"] == "nic.irq_affinity"]
    assert tune(root, config, "apply").exit_code == 0
    assert (root / "sys/class/net/ens1f0np0/mtu").read_text() == "9000\n"


def test_model_store_selects_its_disk_for_read_ahead(root):
    engine = build_engine(Paths(root), TuningSettings(profile_dirs=[], model_store="/var/lib/models/llama-70b"))
    rows = [r for r in engine.plan() if r.tunable == "block.read_ahead_kb"]
    assert [r.target for r in rows] == ["nvme1n1"]  # the partition 259:1's disk


def test_cpuset_two_sockets(tmp_path, root):
    result = tune(root, cfg(tmp_path), "cpuset", "--json")
    info = json.loads(result.output)
    assert info["cpus"] == "1-7,9-15,17-23,25-31"
    assert info["housekeeping_cpus"] == "0,8,16,24"
    assert info["gpu_numa_nodes"] == "0-1" and len(info["gpus"]) == 8
    explicit = tune(root, cfg(tmp_path, housekeeping_cpus="0-1,16-17"), "cpuset")
    assert explicit.output.strip() == "2-15,18-31"


def test_cpuset_gpus_on_one_node_and_nic_selection(tmp_path, root):
    import shutil

    for bdf in ("0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0"):
        shutil.rmtree(root / "sys/bus/pci/devices" / bdf)
    info = json.loads(tune(root, cfg(tmp_path), "cpuset", "--json").output)
    assert info["cpus"] == "9-15,25-31" and info["mems"] == "1" and info["gpu_numa_nodes"] == "1"
    # The only NIC sits on node 0, away from the GPUs: not tuned unless named.
    engine = build_engine(Paths(root), TuningSettings(profile_dirs=[]))
    assert not [r for r in engine.plan() if r.tunable.startswith("nic.")]
    named = build_engine(Paths(root), TuningSettings(profile_dirs=[], nics=["ens1f0np0"]))
    assert {r.target for r in named.plan() if r.tunable == "nic.irq_affinity"} == {
        f"ens1f0np0/irq{n}" for n in (120, 121, 122, 123)}


def test_rollback_api_without_state_is_a_no_op(root):
    engine = build_engine(Paths(root), TuningSettings(profile_dirs=[]))
    assert rollback(engine) == []


def test_read_only_sysctl_is_unsupported_not_a_failed_apply(root):
    (root / "proc/sys/vm/swappiness").chmod(0o444)
    engine = build_engine(Paths(root), TuningSettings(profile_dirs=[]))
    row = next(r for r in engine.plan() if r.tunable == "vm.swappiness")
    assert row.action == "unsupported" and "read-only" in row.note


def test_crash_then_enforce_start_keeps_the_true_originals(tmp_path, root):
    import asyncio

    from agent.config import parse_config
    from agent.daemon import Daemon
    from agent.plugins import subsystem_classes
    from tuning.subsystem import TuningSubsystem

    before = tree(root)
    crash_midway(root, 25)
    daemon = Daemon(parse_config({"tuning": {"profile_dirs": [], "mode": "enforce"}}), None, Paths(root), subsystem_classes())
    sub = next(s for s in daemon.subsystems if isinstance(s, TuningSubsystem))

    async def run():
        await sub.start()
        await sub.stop()

    asyncio.run(run())
    assert load_state(Paths(root)).status == "applied"
    assert set(dict(sub.in_state).values()) == {1}
    # Rolling back now must reach the values from before the crashed run, not the
    # half-applied ones the crash left. (The fixture's /dev/cpu_dma_latency is a
    # plain file that keeps the held value; the real device drops it on close.)
    assert tune(root, cfg(tmp_path), "rollback").exit_code == 0
    after = tree(root)
    assert after.pop("dev/cpu_dma_latency") != before.pop("dev/cpu_dma_latency")
    assert after == before


def test_doctor_reports_tuning_drift(tmp_path, root):
    from agent.config import parse_config
    from tuning.subsystem import TuningSubsystem

    rows = TuningSubsystem.doctor_offline(parse_config({"tuning": {"profile_dirs": []}}), Paths(root))
    assert rows[0].status == "warn" and "vm.swappiness system" in rows[0].detail
    assert "cpu.governor (32 targets)" in rows[0].detail
    assert tune(root, cfg(tmp_path), "apply").exit_code == 0
    rows = TuningSubsystem.doctor_offline(parse_config({"tuning": {"profile_dirs": []}}), Paths(root))
    assert rows[0].status == "ok"


def test_hugepage_pools_per_numa_node(tmp_path, root):
    (tmp_path / "pools.yaml").write_text(
        "include: inference-latency\ntunables:\n  hugepages.2m_per_node: 512\n  hugepages.1g_per_node: 2\n")
    config = cfg(tmp_path, profile="pools", profile_dirs=[str(tmp_path)])
    assert tune(root, config, "apply").exit_code == 0
    for node in (0, 1):
        base = root / f"sys/devices/system/node/node{node}/hugepages"
        assert (base / "hugepages-2048kB/nr_hugepages").read_text() == "512\n"
        assert (base / "hugepages-1048576kB/nr_hugepages").read_text() == "2\n"
    assert tune(root, config, "verify").exit_code == 0


def test_rollback_runs_in_reverse_order_of_apply(root):
    engine = build_engine(Paths(root), TuningSettings(profile_dirs=[]))
    changed, _ = engine.apply()
    applied = [(r.tunable, r.target) for r in changed]
    assert applied[0] == ("cpu.governor", "cpu0") and applied[-1][0] == "block.read_ahead_kb"
    restored = [(o.tunable, o.target) for o in rollback(engine)]
    assert restored == applied[::-1]


def test_one_run_at_a_time(tmp_path, root):
    import fcntl
    import os

    lock = root / "run/infernode/tuning/lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    before = tree(root)
    try:
        result = tune(root, cfg(tmp_path), "apply")
    finally:
        os.close(fd)
    assert result.exit_code == 1 and "another tuning run holds" in result.output
    assert tree(root) == before


def test_unwritable_state_dir_changes_nothing(tmp_path, root):
    # A file where the state directory should be: the originals cannot be saved,
    # so not a single knob may be touched.
    (root / "run/infernode").mkdir(parents=True, exist_ok=True)
    (root / "run/infernode/tuning").write_text("not a directory\n")
    before = tree(root)
    result = tune(root, cfg(tmp_path), "apply")
    assert result.exit_code == 1
    assert "infernode/tuning" in result.output
    assert tree(root) == before


def test_originals_that_cannot_be_saved_change_nothing(tmp_path, root):
    # The lock can be taken but the state file's temporary cannot be written.
    from agent.hostfs import temp_path

    temp_path(state_path(Paths(root))).mkdir(parents=True)
    before = tree(root)
    result = tune(root, cfg(tmp_path), "apply")
    assert result.exit_code == 1
    assert "nothing changed; cannot record the originals" in result.output
    assert tree(root) == before
    assert not state_path(Paths(root)).exists()
