"""Boot parameters in a debootstrapped Debian root, with the real boot loader tools.

GRUB: with GRUB's own configuration files and scripts (grub-common and
grub2-common 2.06): `infernode tune apply
--root` writes the drop-in and runs the root's real update-grub (through chroot),
whose grub.cfg then boots the normal entries with the parameters and the recovery
entry without them; the parameters are pending until the image boots, in their
desired state once /proc/cmdline has them, and rollback gives back grub.cfg and
/etc/default byte for byte. Only grub-probe is a stand-in (tests/doubles/
grub_probe_standin.sh): a chroot on an overlay has no block device to probe.

BLS: the same root with kernel-install (systemd 252, layout=bls) writing Boot
Loader Specification entries: the entry of the installed kernel and
/etc/kernel/cmdline get the parameters, a kernel installed afterwards gets them
from kernel-install itself, and rollback restores the files and takes them out of
that later entry."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import need_root
from tests.harness.rootfs import overlay_root
from tests.unit.tuning.conftest import invoke
from tuning.bls import entry_options

pytestmark = pytest.mark.integration

STANDIN = Path(__file__).resolve().parents[2] / "doubles" / "grub_probe_standin.sh"
KERNEL = "6.1.0-28-amd64"
PROFILE = {
    "description": "boot parameters only",
    "tunables": {"boot.isolcpus": "managed_irq,domain,2-7", "boot.nohz_full": "2-7", "boot.rcu_nocbs": "2-7",
                 "boot.skew_tick": 1, "boot.nosoftlockup": "on", "boot.hugepages_1g": 4},
}
WANTED = ["isolcpus=domain,managed_irq,2-7", "nohz_full=2-7", "rcu_nocbs=2-7", "skew_tick=1",
          "hugepagesz=1G hugepages=4", "nosoftlockup"]


@pytest.fixture
def grub_root(tmp_path):
    need_root()
    with overlay_root() as root:
        if not (root / "usr/sbin/grub-mkconfig").exists():
            pytest.fail("the test image has no grub-mkconfig (tests/harness/rootfs.py includes grub2-common)")
        # What grub-pc's postinst does on a real install, and a kernel for 10_linux to find.
        shutil.copy(root / "usr/share/grub/default/grub", root / "etc/default/grub")
        (root / "boot/grub").mkdir(parents=True, exist_ok=True)
        (root / f"boot/vmlinuz-{KERNEL}").write_bytes(b"")
        (root / f"boot/initrd.img-{KERNEL}").write_bytes(b"")
        shutil.copy(STANDIN, root / "usr/sbin/grub-probe")
        yield root


def update_grub(root: Path) -> str:
    res = subprocess.run(["chroot", str(root), "update-grub"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return (root / "boot/grub/grub.cfg").read_text()


def linux_lines(grub_cfg: str) -> list[str]:
    return [line.strip() for line in grub_cfg.splitlines() if re.match(r"\s*linux\s", line)]


def test_apply_pending_boot_and_rollback_with_real_update_grub(tmp_path, grub_root):
    root = grub_root
    original_cfg = update_grub(root)
    before_default = {p.name: p.read_bytes() for p in (root / "etc/default").rglob("*") if p.is_file()}
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "boot-only.yaml").write_text(yaml.safe_dump(PROFILE))
    config = tmp_path / "infernode.yaml"
    config.write_text(yaml.safe_dump({"tuning": {"profile": "boot-only", "profile_dirs": [str(profiles)]}}))
    args = ("--root", str(root), "--config", str(config))

    result = invoke("tune", "apply", *args)
    assert result.exit_code == 3, result.output  # applied, waiting for the image to boot
    assert "6 knob(s) changed" in result.output
    assert "pending reboot boot.nohz_full: 2-7 (not booted yet: takes effect when this image boots)" in result.output

    lines = linux_lines((root / "boot/grub/grub.cfg").read_text())
    normal = [line for line in lines if " single" not in line]
    recovery = [line for line in lines if " single" in line]
    assert len(normal) == 2 and len(recovery) == 1, lines
    for line in normal:
        assert all(w in line for w in WANTED), line
        assert line.index("quiet") < line.index("isolcpus=")  # ours after the site's
    assert not any(w in recovery[0] for w in WANTED)  # recovery boots without isolation

    assert invoke("tune", "verify", *args).exit_code == 3
    # The image boots with what grub.cfg says.
    (root / "proc/cmdline").write_text("BOOT_IMAGE=" + normal[0].split(None, 1)[1] + "\n")
    verify = invoke("tune", "verify", *args)
    assert verify.exit_code == 0, verify.output

    result = invoke("tune", "rollback", *args)
    assert result.exit_code == 0, result.output
    (root / "proc/cmdline").unlink()
    assert (root / "boot/grub/grub.cfg").read_text() == original_cfg
    assert not (root / "etc/default/grub.d/99-infernode.cfg").exists()
    assert {p.name: p.read_bytes() for p in (root / "etc/default").rglob("*") if p.is_file()} == before_default
    assert not (root / "var/lib/infernode/tuning/persistent.json").exists()


def kernel_install(root: Path, version: str) -> None:
    (root / f"boot/vmlinuz-{version}").write_bytes(b"kernel")
    res = subprocess.run(["chroot", str(root), "kernel-install", "add", version, f"/boot/vmlinuz-{version}"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_bls_entries_and_kernel_install_then_rollback(tmp_path):
    need_root()
    with overlay_root() as root:
        (root / "etc/kernel/install.conf").write_text("layout=bls\n")
        (root / "etc/kernel/cmdline").write_text("root=UUID=0b1c ro quiet\n")
        (root / "etc/kernel/entry-token").write_text("debian\n")
        (root / "boot/loader/entries").mkdir(parents=True)
        kernel_install(root, KERNEL)
        entry = root / f"boot/loader/entries/debian-{KERNEL}.conf"
        before = {p: p.read_bytes() for p in (entry, root / "etc/kernel/cmdline")}
        profiles = tmp_path / "profiles"
        profiles.mkdir()
        (profiles / "boot-only.yaml").write_text(
            "tunables:\n  boot.skew_tick: 1\n  boot.nohz_full: 2-7\n  boot.nosoftlockup: \"on\"\n")
        config = tmp_path / "infernode.yaml"
        config.write_text(yaml.safe_dump({"tuning": {"profile": "boot-only", "profile_dirs": [str(profiles)]}}))
        args = ("--root", str(root), "--config", str(config))

        result = invoke("tune", "apply", *args)
        assert result.exit_code == 3, result.output
        wanted = "root=UUID=0b1c ro quiet nohz_full=2-7 skew_tick=1 nosoftlockup"
        assert entry_options(entry.read_text()) == wanted
        assert (root / "etc/kernel/cmdline").read_text() == wanted + "\n"
        assert not (root / "boot/grub/grub.cfg").exists()  # BLS entries chosen over the image's GRUB scripts

        # A kernel update: kernel-install writes the new entry from /etc/kernel/cmdline.
        later = "6.1.0-29-amd64"
        kernel_install(root, later)
        new_entry = root / f"boot/loader/entries/debian-{later}.conf"
        assert entry_options(new_entry.read_text()) == wanted
        assert invoke("tune", "verify", *args).exit_code == 3

        result = invoke("tune", "rollback", *args)
        assert result.exit_code == 0, result.output
        assert {p: p.read_bytes() for p in before} == before
        assert entry_options(new_entry.read_text()) == "root=UUID=0b1c ro quiet"
        assert not (root / "var/lib/infernode/tuning/bls-params.json").exists()
