"""Boot parameters on the 2-socket fixture tree with a GRUB configuration: plan,
apply (the drop-in, update-grub once), the pending-reboot state, verify against a
/proc/cmdline that has them, rollback byte for byte (also after a "reboot" empties
/run), the refusals. update-grub itself cannot run on a fixture tree: a recording
runner stands in for it here (every other command runs for real); the real
update-grub runs in tests/integration/tuning/test_boot_grub_root.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.paths import Paths
from tuning.engine import OK, PENDING, SET, UNSUPPORTED, EngineError, build_engine, rollback
from tuning.settings import TuningSettings
from tuning.state import load_state, persistent_state_path, state_path
from tuning.tunable import run_command

from .conftest import tree
from .test_engine_fixture import cfg, tune

DROPIN = "etc/default/grub.d/99-infernode.cfg"
# /etc/default/grub as grub2-common 2.06-13 installs it (/usr/share/grub/default/grub), comments cut.
DEBIAN_DEFAULT_GRUB = """GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""
GRUB_DISABLE_OS_PROBER=true
"""
# What the boot tunables look for in grub-mkconfig: these lines of grub-common 2.06-13's.
MKCONFIG_EXCERPT = """#! /bin/sh
if test -f ${sysconfdir}/default/grub ; then
  . ${sysconfdir}/default/grub
fi
for x in ${sysconfdir}/default/grub.d/*.cfg ; do
  if [ -e "${x}" ]; then
    . "${x}"
  fi
done
"""
# Housekeeping on this fixture: 0,16 and 8,24; the GPUs' local CPUs are all 32.
INFERENCE = "1-7,9-15,17-23,25-31"
BOOT_PARTITIONED = {
    "boot.isolcpus": f"domain,managed_irq,{INFERENCE}", "boot.nohz_full": INFERENCE,
    "boot.rcu_nocbs": INFERENCE, "boot.skew_tick": "1", "boot.nosoftlockup": "on",
}
BOOTED_WITH_THEM = (f"BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=UUID=0b1c ro quiet isolcpus=managed_irq,domain,"
                    f"{INFERENCE} nohz_full={INFERENCE} rcu_nocbs={INFERENCE} skew_tick=1 nosoftlockup\n")


class RecordingGrub:
    """Runs every command for real except the boot loader's regeneration, which it
    records and answers with `rc` (0: update-grub succeeded)."""

    def __init__(self, rc: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.rc = rc

    def __call__(self, argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
        if "update-grub" in argv or any(a.endswith("mkconfig") for a in argv):
            self.calls.append(argv)
            return subprocess.CompletedProcess(argv, self.rc, "", "" if self.rc == 0 else "grub-probe: error")
        return run_command(argv, timeout)


def grub_host(root: Path, cmdline: str | None = "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=UUID=0b1c ro quiet\n",
              vendor: str = "GenuineIntel") -> None:
    (root / "etc/default").mkdir(parents=True, exist_ok=True)
    (root / "etc/default/grub").write_text(DEBIAN_DEFAULT_GRUB)
    (root / "etc/default/grub.d").mkdir(exist_ok=True)
    (root / "usr/sbin").mkdir(parents=True, exist_ok=True)
    (root / "usr/sbin/grub-mkconfig").write_text(MKCONFIG_EXCERPT)
    (root / "usr/sbin/update-grub").write_text("#!/bin/sh\nset -e\nexec grub-mkconfig -o /boot/grub/grub.cfg \"$@\"\n")
    if cmdline is not None:
        (root / "proc/cmdline").write_text(cmdline)
    (root / "proc/cpuinfo").write_text(f"processor\t: 0\nvendor_id\t: {vendor}\n")


def engine(root: Path, runner: RecordingGrub, profile: str = "inference-partitioned", **overrides):
    eng = build_engine(Paths(root), TuningSettings(profile_dirs=[], overrides=overrides), profile)
    eng.ctx.run = runner
    return eng


def boot_rows(eng) -> dict[str, object]:
    return {r.tunable: r for r in eng.plan() if r.tunable.startswith("boot.")}


def test_plan_apply_pending_verify_rollback_byte_for_byte(root):
    grub_host(root)
    before = tree(root)
    runner = RecordingGrub()
    eng = engine(root, runner)
    rows = boot_rows(eng)
    assert {k: r.desired for k, r in rows.items()} == BOOT_PARTITIONED
    assert {r.action for r in rows.values()} == {SET}
    assert rows["boot.isolcpus"].current == "" and rows["boot.isolcpus"].booted == ""

    changed, _ = eng.apply()
    assert {r.tunable for r in changed} >= set(BOOT_PARTITIONED)
    # update-grub once for the five parameters, on the image through chroot.
    assert runner.calls == [["chroot", str(root), "update-grub"]]
    text = (root / DROPIN).read_text()
    assert f'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT nohz_full={INFERENCE}" # boot.nohz_full' in text
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT nosoftlockup" # boot.nosoftlockup' in text

    rows = boot_rows(eng)
    assert {k: r.action for k, r in rows.items()} == dict.fromkeys(BOOT_PARTITIONED, PENDING)
    assert "takes effect at the next reboot" in rows["boot.skew_tick"].note
    assert eng.verify() == []  # pending is not drift
    assert not [r for r in eng.plan() if r.action == SET]

    # The node rebooted with them: in their desired state.
    (root / "proc/cmdline").write_text(BOOTED_WITH_THEM)
    assert {k: r.action for k, r in boot_rows(eng).items()} == dict.fromkeys(BOOT_PARTITIONED, OK)

    restored = rollback(eng)
    assert {o.tunable for o in restored} >= set(BOOT_PARTITIONED)
    assert len(runner.calls) == 2
    (root / "proc/cmdline").write_text(before["proc/cmdline"].decode())  # type: ignore[union-attr]
    assert tree(root) == before
    assert not (root / DROPIN).exists()
    assert not state_path(Paths(root)).exists() and not persistent_state_path(Paths(root)).exists()


def test_rollback_after_the_reboot_that_emptied_run(root):
    grub_host(root)
    before = tree(root)
    runner = RecordingGrub()
    engine(root, runner).apply()
    assert persistent_state_path(Paths(root)).exists()
    shutil.rmtree(root / "run")  # a reboot: /run is a tmpfs
    (root / "proc/cmdline").write_text(BOOTED_WITH_THEM)
    eng = engine(root, runner)
    state = load_state(Paths(root))
    assert state is not None and {o.tunable for o in state.originals} >= set(BOOT_PARTITIONED)
    assert all(o.persistent for o in state.originals)
    rollback(eng)
    assert not (root / DROPIN).exists()
    # What outlives a reboot is back; the fixture's runtime files do not reset as a host's do.
    assert {k: v for k, v in tree(root).items() if k.startswith("etc/")} == {
        k: v for k, v in before.items() if k.startswith("etc/")}
    assert not persistent_state_path(Paths(root)).exists()


def test_a_site_dropin_is_restored_byte_for_byte(root):
    grub_host(root)
    # Our file already there from an operator's earlier hand edit in our own format, plus theirs.
    (root / "etc/default/grub.d/50-site.cfg").write_text('GRUB_CMDLINE_LINUX="console=ttyS0,115200"\n')
    runner = RecordingGrub()
    eng = engine(root, runner, "inference-latency", **{"boot.skew_tick": 1})
    before = tree(root)
    eng.apply()
    assert "skew_tick=1" in (root / DROPIN).read_text()
    eng2 = engine(root, runner, "inference-partitioned")
    eng2.apply()
    rollback(eng2)
    assert tree(root) == before


def test_failed_update_grub_restores_the_dropin_and_regenerates_again(root):
    grub_host(root)
    before = tree(root)
    runner = RecordingGrub(rc=1)
    with pytest.raises(EngineError, match=r"after the writes: .*update-grub failed \(exit 1\): grub-probe: error"
                                          r".*could NOT restore: after restoring: .*update-grub failed"):
        engine(root, runner).apply()
    assert not (root / DROPIN).exists()
    # Once for the change, once for the restored files (which failed too, and says so).
    assert len(runner.calls) == 2
    # The files are back; grub.cfg was not regenerated from them, so the record stays
    # for `tune rollback` to retry, which succeeds once update-grub does.
    assert persistent_state_path(Paths(root)).exists()
    runner.rc = 0
    rollback(engine(root, runner))
    assert len(runner.calls) == 3
    assert tree(root) == before


def test_site_sets_the_parameter_itself_refused_nothing_changed(root):
    grub_host(root)
    (root / "etc/default/grub").write_text(DEBIAN_DEFAULT_GRUB.replace('""', '"nohz_full=4-7"'))
    before = tree(root)
    runner = RecordingGrub()
    with pytest.raises(EngineError, match=r"already sets nohz_full=4-7; infernode does not stack a second value"):
        engine(root, runner).apply()
    assert tree(root) == before
    assert runner.calls == [["chroot", str(root), "update-grub"]]  # after the restore


def test_a_later_dropin_that_overrides_ours_is_caught_on_read_back(root):
    grub_host(root)
    (root / "etc/default/grub.d/zz-cloud.cfg").write_text('GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"\n')
    before = tree(root)
    with pytest.raises(EngineError, match=r"boot.isolcpus cmdline: wrote .* reports ''"):
        engine(root, RecordingGrub()).apply()
    assert tree(root) == before


def test_the_setting_is_read_as_grub_mkconfig_reads_it(root):
    grub_host(root, cmdline="BOOT_IMAGE=/boot/vmlinuz root=UUID=0b1c ro quiet skew_tick=1\n")
    (root / "etc/default/grub.d/50-site.cfg").write_text(
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT skew_tick=1 hugepagesz=1G hugepages=16"\n')
    rows = boot_rows(engine(root, RecordingGrub(), "inference-latency",
                            **{"boot.skew_tick": 1, "boot.hugepages_1g": 16, "boot.mitigations": "off"}))
    assert rows["boot.skew_tick"].action == OK and rows["boot.hugepages_1g"].action == PENDING
    assert rows["boot.hugepages_1g"].booted == ""
    assert rows["boot.mitigations"].action == SET and rows["boot.mitigations"].current == ""


def test_an_image_that_never_booted_is_pending_until_it_does(root):
    grub_host(root, cmdline=None)
    runner = RecordingGrub()
    eng = engine(root, runner, "inference-latency", **{"boot.skew_tick": 1})
    eng.apply()
    row = boot_rows(eng)["boot.skew_tick"]
    assert row.action == PENDING and row.booted is None and "when this image boots" in row.note


def test_no_boot_loader_we_write_is_unsupported_and_says_which_we_do(root):
    (root / "proc/cpuinfo").write_text("vendor_id\t: GenuineIntel\n")
    rows = boot_rows(engine(root, RecordingGrub(), "inference-partitioned"))
    assert {r.action for r in rows.values()} == {UNSUPPORTED}
    assert "GRUB (/etc/default/grub.d) and BLS entries only" in rows["boot.isolcpus"].note
    # A grub-mkconfig that does not read grub.d (and no BLS entries): said so.
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/grub2-mkconfig").write_text("#! /bin/sh\n. ${sysconfdir}/default/grub\n")
    rows = boot_rows(engine(root, RecordingGrub(), "inference-partitioned"))
    assert "does not read /etc/default/grub.d" in rows["boot.nohz_full"].note and rows["boot.nohz_full"].action == UNSUPPORTED


def test_pstate_modes_are_vendor_specific(root):
    grub_host(root, vendor="AuthenticAMD")
    rows = boot_rows(engine(root, RecordingGrub(), "inference-throughput",
                            **{"boot.intel_pstate": "active", "boot.amd_pstate": "active"}))
    assert rows["boot.intel_pstate"].action == UNSUPPORTED and "GenuineIntel" in rows["boot.intel_pstate"].note
    assert rows["boot.amd_pstate"].action == SET


def test_a_hand_edited_dropin_is_an_error_not_a_guess(root):
    grub_host(root)
    (root / DROPIN).write_text('GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT quiet splash"\n')
    rows = boot_rows(engine(root, RecordingGrub()))
    row = rows["boot.isolcpus"]
    assert row.action == "error" and "line 1 was not written by infernode" in row.note
    with pytest.raises(EngineError, match="nothing changed; cannot plan: .*was not written by infernode"):
        engine(root, RecordingGrub()).apply()


def test_cli_verify_exits_3_while_pending_and_0_once_booted(tmp_path, root):
    grub_host(root)
    config = cfg(tmp_path, profile="inference-latency", overrides={"boot.skew_tick": 1, "boot.nosoftlockup": "on"})
    engine(root, RecordingGrub(), "inference-latency", **{"boot.skew_tick": 1, "boot.nosoftlockup": "on"}).apply()
    result = tune(root, config, "verify")
    lines = [line for line in result.output.splitlines() if not line.startswith("drift ")]
    assert result.exit_code in (1, 3), result.output
    assert "pending reboot boot.skew_tick: 1 (booted with (unset): takes effect at the next reboot)" in lines
    plan = json.loads(tune(root, config, "plan", "--json").output)
    boot = {r["tunable"]: r for r in plan["rows"] if r["tunable"].startswith("boot.")}
    assert boot["boot.skew_tick"]["action"] == "pending-reboot" and boot["boot.skew_tick"]["booted"] == ""


@pytest.mark.parametrize("overrides,message", [
    ({"boot.intel_pstate": "disable"}, "intel_pstate outside active mode"),
    ({"boot.intel_pstate": "passive"}, "intel_pstate outside active mode"),
    ({"boot.amd_pstate": "guided"}, "amd_pstate outside active mode"),
    ({"boot.hugepages_1g": 8, "hugepages.1g_per_node": 4}, "1 GiB pages are reserved at boot or resized"),
])
def test_conflicting_pairs_are_refused(tmp_path, root, overrides, message):
    grub_host(root)
    # inference-latency sets cpu.energy_performance_preference.
    config = cfg(tmp_path, profile="inference-latency", overrides=overrides)
    before = tree(root)
    result = tune(root, config, "apply")
    assert result.exit_code == 2
    assert message in result.output and "drop one of them" in result.output
    assert tree(root) == before


def test_active_pstate_with_epp_is_no_conflict(tmp_path, root):
    grub_host(root)
    result = tune(root, cfg(tmp_path, profile="inference-latency", overrides={"boot.intel_pstate": "active"}), "plan")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("key,value", [
    ("boot.isolcpus", "everything"), ("boot.isolcpus", "managed_irq,zz"), ("boot.nohz_full", "1-"),
    ("boot.skew_tick", 2), ("boot.hugepages_1g", 0), ("boot.hugepages_1g", "0:x"), ("boot.mitigations", "maybe"),
    ("boot.nosoftlockup", "off"), ("boot.iommu", "pt;reboot"),
])
def test_bad_boot_values_exit_2_naming_the_key(tmp_path, root, key, value):
    result = tune(root, cfg(tmp_path, profile="inference-latency", overrides={key: value}), "plan")
    assert result.exit_code == 2
    assert f"tuning.overrides.{key}: expected" in result.output


def test_daemon_exports_pending_reboot_apart_from_drift_and_does_not_reapply(root):
    import asyncio

    from agent.config import parse_config
    from agent.daemon import Daemon
    from agent.plugins import subsystem_classes
    from tuning.subsystem import TuningSubsystem

    grub_host(root)
    overrides = {"boot.skew_tick": 1}
    engine(root, RecordingGrub(), "inference-latency", **overrides).apply()
    daemon = Daemon(parse_config({"tuning": {"profile_dirs": [], "mode": "enforce", "overrides": overrides}}),
                    None, Paths(root), subsystem_classes())
    sub = next(s for s in daemon.subsystems if isinstance(s, TuningSubsystem))

    def metric(name: str) -> dict[str, float]:
        return {s.labels["tunable"]: s.value for s in sub.samples()
                if s.name == name and s.labels["tunable"].startswith("boot.")}

    async def scenario():
        await sub.start()
        try:
            drift = sub.verify_once()
            first = (drift, metric("infernode_tuning_pending_reboot"), metric("infernode_tuning_in_desired_state"),
                     [r.item for r in sub.doctor() if r.status == "warn"])
            (root / "proc/cmdline").write_text("root=UUID=0b1c ro quiet skew_tick=1\n")  # rebooted
            sub.verify_once()
            return first, metric("infernode_tuning_pending_reboot"), metric("infernode_tuning_in_desired_state")
        finally:
            await sub.stop()

    (drift, pending, in_state, warnings), pending_after, in_state_after = asyncio.run(scenario())
    assert drift == [] and sub.reapplied == 0  # enforce mode does not rewrite a pending parameter
    assert pending == {"boot.skew_tick": 1} and in_state == {"boot.skew_tick": 0}
    assert warnings == ["pending reboot"]
    assert not [e for e in daemon.events.recent() if e.kind == "tuning_drift"]
    assert pending_after == {"boot.skew_tick": 0} and in_state_after == {"boot.skew_tick": 1}


@pytest.mark.parametrize("where", ["run/infernode/tuning/state.json", "var/lib/infernode/tuning/persistent.json"])
@pytest.mark.parametrize("text", ["{garbage", '{"status": "applied"}'])
def test_an_unreadable_record_stops_apply_and_rollback_cleanly(tmp_path, root, where, text):
    grub_host(root)
    record = root / where
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(text)
    before = tree(root)
    config = cfg(tmp_path)
    for command in ("apply", "rollback"):
        result = tune(root, config, command)
        assert result.exit_code == 1, result.output
        assert "nothing changed" in result.output and "inspect it, then remove it" in result.output
        assert "Traceback" not in result.output
    assert tree(root) == before
