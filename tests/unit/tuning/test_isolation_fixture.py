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


def test_slice_allowed_cpus_in_an_image_writes_and_restores_the_dropins(tmp_path, root):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "slices.yaml").write_text("tunables:\n  systemd.slice_allowed_cpus: housekeeping\n")
    config = cfg(tmp_path, profile_dirs=[str(profiles)])
    site = root / "etc/systemd/system/user.slice.d/50-infernode-allowed-cpus.conf"
    site.parent.mkdir(parents=True)
    site.write_text("[Slice]\nAllowedCPUs=0-3\n")  # left by hand: restored byte for byte
    before = tree(root)
    plan = json.loads(tune(root, config, "plan", "--json", "--profile", "slices").output)
    rows = {r["target"]: r for r in plan["rows"]}
    assert rows["system.slice"]["current"] == "0-31" and rows["user.slice"]["current"] == "0-3"
    assert {r["desired"] for r in rows.values()} == {"0,8,16,24"}
    assert tune(root, config, "apply", "--profile", "slices").exit_code == 0
    text = (root / "etc/systemd/system/system.slice.d/50-infernode-allowed-cpus.conf").read_text()
    assert "[Slice]\nAllowedCPUs=0,8,16,24\n" in text
    assert tune(root, config, "verify", "--profile", "slices").exit_code == 0
    assert tune(root, config, "rollback").exit_code == 0
    assert tree(root) == before


def test_slice_allowed_cpus_needs_cpuset_in_the_unified_hierarchy(tmp_path):
    """On this host, as the kernel mounted it: unsupported unless /sys/fs/cgroup is
    cgroup v2 with the cpuset controller (this VM's hybrid hierarchy is not)."""
    from agent.paths import Paths
    from tuning.engine import UNSUPPORTED, build_engine
    from tuning.settings import TuningSettings

    (tmp_path / "s.yaml").write_text("tunables:\n  systemd.slice_allowed_cpus: housekeeping\n")
    rows = build_engine(Paths("/"), TuningSettings(profile="s", profile_dirs=[str(tmp_path)])).plan()
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    v2_cpuset = controllers.exists() and "cpuset" in controllers.read_text().split()
    assert {r.action == UNSUPPORTED for r in rows} == {not v2_cpuset}
    if not controllers.exists():
        assert "not a cgroup v2 (unified) mount" in rows[0].note


def test_a_virtio_nics_vectors_are_its_pci_functions_and_a_bridges_are_not(tmp_path):
    """/sys as a VM lays it out: the interface's device is the virtio device, whose
    msi_irqs sit on the PCI function above it; a PCI device without MSI is not
    credited with its bridge's vectors."""
    import os

    from tuning.tunables.nic import device_msi_irqs

    sys_ = tmp_path / "sys"
    pci = sys_ / "devices/pci0000:00/0000:00:03.0"
    (pci / "msi_irqs").mkdir(parents=True)
    for n in (37, 38, 39):
        (pci / "msi_irqs" / str(n)).write_text("msix\n")
    (pci / "virtio2").mkdir()
    for bus in ("virtio", "pci"):
        (sys_ / "bus" / bus).mkdir(parents=True)
    os.symlink("../../../../bus/virtio", pci / "virtio2/subsystem")
    legacy = pci / "0000:01:00.0"  # behind the same function, as a bridge's child
    legacy.mkdir()
    os.symlink("../../../../bus/pci", legacy / "subsystem")
    (sys_ / "class/net/eth0").mkdir(parents=True)
    (sys_ / "class/net/eth1").mkdir(parents=True)
    os.symlink("../../../devices/pci0000:00/0000:00:03.0/virtio2", sys_ / "class/net/eth0/device")
    os.symlink("../../../devices/pci0000:00/0000:00:03.0/0000:01:00.0", sys_ / "class/net/eth1/device")
    assert device_msi_irqs(sys_ / "class/net/eth0/device") == [37, 38, 39]
    assert device_msi_irqs(sys_ / "class/net/eth1/device") == []
    assert device_msi_irqs(sys_ / "class/net/lo/device") == []
