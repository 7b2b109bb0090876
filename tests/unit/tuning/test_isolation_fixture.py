"""inference-isolated on the 2-socket fixture tree: the housekeeping sysctls, the
workqueue masks and systemd's default CPU affinity are planned, applied, verified and
rolled back byte for byte (the fixture gains the files a real host has)."""

import json
from pathlib import Path

import pytest

from tuning.tunables.isolation import cpus_to_mask, mask_to_cpus

from .conftest import tree
from .test_engine_fixture import cfg, tune

DROPIN = "etc/systemd/system.conf.d/50-infernode-housekeeping.conf"


@pytest.mark.parametrize("cpus,text", [({0}, "00000001"), ({0, 1, 31}, "80000003"), ({32}, "00000001,00000000"),
                                        (set(range(64)), "ffffffff,ffffffff")])
def test_cpumask_text_both_ways(cpus, text):
    assert cpus_to_mask(frozenset(cpus)) == text
    assert mask_to_cpus(text) == frozenset(cpus)
    assert mask_to_cpus("ff,ffffffff\n") == frozenset(range(40))
    with pytest.raises(ValueError):
        mask_to_cpus("zz")


def _isolatable(root: Path) -> None:
    """What a host has and the fixture lacks: workqueue masks (all 32 CPUs) and the sysctls."""
    for rel in ("sys/devices/virtual/workqueue/cpumask", "sys/bus/workqueue/devices/writeback/cpumask"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("ffffffff\n")
    for key, value in (("kernel/timer_migration", "1"), ("vm/stat_interval", "1"), ("kernel/nmi_watchdog", "1"),
                       ("kernel/hung_task_timeout_secs", "120")):
        (root / "proc/sys" / key).write_text(value + "\n")


def test_isolated_profile_plan_apply_verify_rollback(tmp_path, root):
    _isolatable(root)
    config = cfg(tmp_path)
    before = tree(root)
    plan = json.loads(tune(root, config, "plan", "--json", "--profile", "inference-isolated").output)
    rows = {(r["tunable"], r["target"]): r for r in plan["rows"]}
    # Housekeeping on this fixture: the first core and its sibling of each node (0,16 and 8,24).
    assert rows[("workqueue.cpumask", "system")]["desired"] == "0,8,16,24"
    assert rows[("systemd.cpu_affinity", "manager")]["current"] == "0-31"
    assert rows[("kernel.timer_migration", "system")]["desired"] == "0"
    result = tune(root, config, "apply", "--profile", "inference-isolated")
    assert result.exit_code == 0, result.output
    assert (root / "sys/devices/virtual/workqueue/cpumask").read_text() == "01010101\n"
    assert (root / "sys/bus/workqueue/devices/writeback/cpumask").read_text() == "01010101\n"
    assert "CPUAffinity=0 8 16 24" in (root / DROPIN).read_text()
    assert (root / "proc/sys/kernel/hung_task_timeout_secs").read_text() == "600\n"
    verify = tune(root, config, "verify", "--profile", "inference-isolated")
    assert verify.exit_code == 0, verify.output
    result = tune(root, config, "rollback")
    assert result.exit_code == 0, result.output
    assert tree(root) == before
    assert not (root / DROPIN).exists()


def test_an_empty_housekeeping_set_is_refused_before_anything_changes(tmp_path, root):
    _isolatable(root)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "bad.yaml").write_text("tunables:\n  workqueue.cpumask: nobody\n")
    result = tune(root, cfg(tmp_path, profile_dirs=[str(tmp_path / "p")]), "plan", "--profile", "bad")
    assert result.exit_code == 2 and "'housekeeping' or a CPU list" in result.output
