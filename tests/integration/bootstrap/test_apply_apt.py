"""apt for real inside a debootstrapped Debian root, against a local repository of
stand-in NVIDIA packages. Two overlay roots are shared by the module: `fresh`, which
nothing installs into (fresh plan, refused pin), and `root`, applied once when the
module first needs it (first apply, idempotent re-apply, drift, reboot). A test on
`root` starts by converging it (`converged`: an apply that does nothing when the
last test left it converged), so each test passes alone and in any order.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO, need_root
from tests.harness.rootfs import base_rootfs, overlay_root
from tests.integration.bootstrap.standin_repo import MANIFEST, PACKAGES, build_repo, marker

pytestmark = pytest.mark.integration

PINNED = {pkg: versions[0] for pkg, versions in PACKAGES.items()}
INFERNODE = [str(REPO / ".venv/bin/infernode")]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    need_root()
    if not shutil.which("dpkg-scanpackages"):
        pytest.skip("dpkg-dev not installed (scripts/setup-os.sh installs it)")
    return build_repo(tmp_path_factory.mktemp("standin"))


@contextlib.contextmanager
def _standin_root(repo: Path) -> Iterator[Path]:
    with overlay_root(base_rootfs()) as r:
        shutil.copytree(repo, r / "srv/infernode-standin-repo")
        # An HGX board's PCI tree, so fabric manager is wanted.
        shutil.copytree(FIXTURES / "pci-hgx-8gpu-4nvswitch/sys", r / "sys", dirs_exist_ok=True, symlinks=True)
        yield r


@pytest.fixture(scope="module")
def fresh(repo):
    """A root nothing is installed into."""
    with _standin_root(repo) as r:
        yield r


@pytest.fixture(scope="module")
def first_apply(repo, manifest):
    """A root, and what the first `bootstrap apply` on it printed."""
    with _standin_root(repo) as r:
        yield r, bootstrap(r, manifest, "apply")


@pytest.fixture
def root(first_apply, manifest) -> Path:
    """The applied root, converged again if the last test left it drifted."""
    r, _ = first_apply
    p = bootstrap(r, manifest, "apply")
    assert p.returncode == 0, p.stdout + p.stderr
    return r


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("manifest") / "manifest.yaml"
    p.write_text(MANIFEST)
    return p


def bootstrap(root: Path, manifest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*INFERNODE, "bootstrap", args[0], "--root", str(root), "--manifest", str(manifest), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def dpkg_state(root: Path) -> dict[str, tuple[str, str]]:
    p = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f=${Package}\t${Version}\t${Status}\n", *PINNED],
                       capture_output=True, text=True)
    out = {}
    for line in p.stdout.splitlines():
        name, version, status = line.split("\t")
        if status.endswith(" installed"):
            out[name] = (version, status.split()[0])
    return out


def by_hand(root: Path, *cmd: str) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["chroot", str(root), *cmd], check=True, capture_output=True, text=True, env=env)


def test_plan_on_fresh_root_installs_everything(fresh, manifest):
    p = bootstrap(fresh, manifest, "plan", "--json")
    assert p.returncode == 1, p.stderr
    plan = json.loads(p.stdout)
    assert {c["package"]: c["action"] for c in plan["components"]} == {pkg: "install" for pkg in PINNED}
    assert plan["detection"]["os"]["family"] == "debian"
    assert len(plan["detection"]["gpus"]) == 8 and len(plan["detection"]["nvswitches"]) == 4
    assert not plan["converged"]


def test_pinned_version_missing_from_repo_fails_and_changes_nothing(fresh, manifest, tmp_path):
    root = fresh
    override = tmp_path / "override.yaml"
    override.write_text("cuda_toolkit:\n  version: 13.0.9-1\n")
    status_before = (root / "var/lib/dpkg/status").read_bytes()
    p = bootstrap(root, manifest, "apply", "--override", str(override))
    assert p.returncode == 4, p.stdout + p.stderr
    assert "cuda-toolkit-13-0=13.0.9-1 is not in the repository" in p.stderr
    assert "available: 13.0.2-1, 13.0.1-1" in p.stderr
    assert "nothing was changed" in p.stderr
    assert (root / "var/lib/dpkg/status").read_bytes() == status_before
    assert dpkg_state(root) == {}
    # The repository source it wrote for the preflight is taken back.
    assert not (root / "etc/apt/sources.list.d/infernode-nvidia.list").exists()
    assert not (root / "etc/modprobe.d/infernode-blacklist-nouveau.conf").exists()


def test_first_apply_installs_pinned_versions_and_holds_them(first_apply, root):
    _, p = first_apply
    assert p.returncode == 0, p.stdout + p.stderr
    assert dpkg_state(root) == {pkg: (v, "hold") for pkg, v in PINNED.items()}
    for pkg, v in PINNED.items():
        assert (root / marker(pkg).lstrip("/")).read_text().strip() == v
    source = (root / "etc/apt/sources.list.d/infernode-nvidia.list").read_text()
    assert "deb [trusted=yes] file:/srv/infernode-standin-repo ./" in source
    blacklist = (root / "etc/modprobe.d/infernode-blacklist-nouveau.conf").read_text()
    assert "blacklist nouveau" in blacklist and "options nouveau modeset=0" in blacklist
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "nvidia-persistenced.service").is_symlink()
    assert (wants / "nvidia-fabricmanager.service").is_symlink()
    assert "REBOOT" not in p.stdout


def test_second_apply_changes_nothing_and_says_so(root, manifest):
    status_before = (root / "var/lib/dpkg/status").read_bytes()
    p = bootstrap(root, manifest, "apply")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "nothing to do" in p.stdout
    assert "changed:" not in p.stdout
    assert (root / "var/lib/dpkg/status").read_bytes() == status_before
    plan = bootstrap(root, manifest, "plan", "--json")
    assert plan.returncode == 0 and json.loads(plan.stdout)["converged"]


def _bootstrap_subsystem(root: Path, manifest: Path):
    from agent.config import parse_config
    from agent.daemon import Daemon
    from agent.paths import Paths
    from agent.plugins import subsystem_classes

    daemon = Daemon(parse_config({"bootstrap": {"manifest": str(manifest)}}), None, Paths(root), subsystem_classes())
    return daemon, next(s for s in daemon.subsystems if s.name == "bootstrap")


def _exposition(daemon) -> str:
    from agent.exposition import render

    return render(daemon.telemetry.runtime.scrape(), daemon.telemetry.catalog)[0].decode()


def test_daemon_exports_component_state(root, manifest):
    daemon, sub = _bootstrap_subsystem(root, manifest)
    sub.refresh()  # what the daemon's worker thread runs; dpkg-query in the root
    text = _exposition(daemon)
    assert 'infernode_bootstrap_in_desired_state{component="nccl"} 1.0' in text
    assert ('infernode_bootstrap_component_info{component="dcgm",installed="1:4.4.1-1",pinned="1:4.4.1-1"} 1.0'
            in text)
    assert 'infernode_bootstrap_pci_devices{kind="nvswitch"} 4.0' in text
    assert [r.status for r in sub.doctor()] == ["ok"]


def test_drift_is_planned_as_upgrade_and_downgrade_and_corrected(root, manifest):
    by_hand(root, "apt-mark", "unhold", "libnccl2", "cuda-drivers-580")
    by_hand(root, "apt-get", "install", "-y", "--allow-downgrades",
            "libnccl2=2.27.7-1+cuda13.0", "cuda-drivers-580=580.105.08-1")
    plan = json.loads(bootstrap(root, manifest, "plan", "--json").stdout)
    actions = {c["package"]: (c["installed"], c["action"]) for c in plan["components"]}
    assert actions["libnccl2"] == ("2.27.7-1+cuda13.0", "upgrade")
    assert actions["cuda-drivers-580"] == ("580.105.08-1", "downgrade")
    assert actions["libcudnn9-cuda-13"] == ("9.14.0.64-1", "nothing")
    p = bootstrap(root, manifest, "apply")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "upgrade libnccl2 2.27.7-1+cuda13.0 -> 2.28.3-1+cuda13.0" in p.stdout
    assert "downgrade cuda-drivers-580 580.105.08-1 -> 580.95.05-1" in p.stdout
    assert dpkg_state(root) == {pkg: (v, "hold") for pkg, v in PINNED.items()}


def test_daemon_sees_drift(root, manifest):
    daemon, sub = _bootstrap_subsystem(root, manifest)
    sub.refresh()
    by_hand(root, "apt-mark", "unhold", "libcudnn9-cuda-13", "cuda-toolkit-13-0")
    by_hand(root, "apt-get", "install", "-y", "--allow-downgrades", "cuda-toolkit-13-0=13.0.1-1")
    sub.refresh()
    changes = [e for e in daemon.events.recent() if e.kind == "bootstrap_change"]
    assert [dict(e.attributes) for e in changes] == [
        {"component": "cuda_toolkit", "version": "13.0.1-1", "previous": "13.0.2-1"}]
    text = _exposition(daemon)
    assert 'infernode_bootstrap_in_desired_state{component="cuda_toolkit"} 0.0' in text
    assert 'installed="13.0.1-1",pinned="13.0.2-1"' in text
    # Installed at the pin but no longer held: unattended upgrades could move it.
    assert 'infernode_bootstrap_in_desired_state{component="cudnn"} 0.0' in text
    assert 'infernode_bootstrap_in_desired_state{component="driver"} 1.0' in text
    assert "cudnn" in next(iter(sub.doctor())).detail


def test_driver_change_with_old_module_loaded_reports_reboot(root, manifest):
    # The root's /proc is a plain directory (nothing is mounted there by apply), so
    # a loaded 570 module is described by the file the kernel would show.
    nv = root / "proc/driver/nvidia"
    nv.mkdir(parents=True)
    (nv / "version").write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.172.08  "
                                "Release Build  (dvs-builder@U16-I3-B03-4-3)  Tue Jul  8 17:54:58 UTC 2025\n")
    try:
        by_hand(root, "apt-mark", "unhold", "nvidia-kernel-open-dkms")
        by_hand(root, "apt-get", "install", "-y", "--allow-downgrades", "nvidia-kernel-open-dkms=580.82.07-1")
        p = bootstrap(root, manifest, "apply")
        assert p.returncode == 3, p.stdout + p.stderr
        assert "REBOOT REQUIRED: loaded nvidia module is 570.172.08, pinned driver is 580.95.05" in p.stdout
        assert "not rebooting" in p.stdout
        assert dpkg_state(root)["nvidia-kernel-open-dkms"] == ("580.95.05-1", "hold")
    finally:
        shutil.rmtree(root / "proc/driver")


def test_verify_on_the_applied_root(root, manifest):
    p = bootstrap(root, manifest, "verify", "--json")
    assert p.returncode == 1
    checks = {c["check"]: c for c in json.loads(p.stdout)["checks"]}
    # The stand-in toolkit's nvcc runs inside the root; no driver is loaded there.
    assert checks["nvcc"]["ok"] and "release 13.0" in checks["nvcc"]["detail"]
    assert not checks["driver_loaded"]["ok"] and "not loaded" in checks["driver_loaded"]["detail"]
    assert not checks["nvidia_smi"]["ok"]
    assert checks["gpus_on_pci"]["ok"] and "8 NVIDIA GPU(s), 4 NVSwitch(es)" in checks["gpus_on_pci"]["detail"]
    assert checks["service:nvidia-persistenced.service"]["detail"].startswith("enabled")
