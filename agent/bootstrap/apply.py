"""Apply: bring the node to the manifest. Exact versions through the distro's package
manager, holds against unattended upgrades, nouveau blacklisted (initramfs rebuilt
when that changed), nvidia-persistenced and (with NVSwitches) fabric manager enabled.

Everything that can be checked is checked before the first change: every pinned
version must be in the repository and the whole transaction must resolve (a
simulated install). Never reboots unless asked.

Exit statuses (also documented in `infernode bootstrap apply --help`):
  0 converged (or nothing to do), 1 a step failed, 2 invalid manifest,
  3 applied but a reboot is required, 4 a pinned version is not in the repository
  (nothing was changed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.bootstrap.detect import Detection
from agent.bootstrap.manifest import Manifest, pins
from agent.bootstrap.packages import Backend, PackageError, Runner
from agent.bootstrap.plan import CHANGES, Plan, compute_plan
from agent.bootstrap.repo import APT_SOURCE_REL, DNF_REPO_ID, RepoError, install_repo, restore
from agent.hostfs import write_if_changed
from agent.paths import Paths

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MANIFEST = 2
EXIT_REBOOT = 3
EXIT_UNAVAILABLE = 4

NOUVEAU_CONF = "/etc/modprobe.d/infernode-blacklist-nouveau.conf"
NOUVEAU_TEXT = ("# Managed by infernode bootstrap: the nvidia driver needs nouveau unbound.\n"
                "blacklist nouveau\noptions nouveau modeset=0\n")
# dracut does not read modprobe.d for what to leave out of the image.
DRACUT_CONF = "/etc/dracut.conf.d/infernode-blacklist-nouveau.conf"
DRACUT_TEXT = '# Managed by infernode bootstrap.\nomit_drivers+=" nouveau "\n'
PERSISTENCED = "nvidia-persistenced.service"
FABRICMANAGER = "nvidia-fabricmanager.service"


class ApplyError(Exception):
    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ApplyReport:
    changed: list[str] = field(default_factory=list)
    reboot_reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        return EXIT_REBOOT if self.reboot_reasons else EXIT_OK


def _write_if_different(paths: Paths, host_path: str, text: str) -> bool:
    return write_if_changed(paths.host(host_path), text)


def preflight(plan: Plan, backend: Backend) -> None:
    """Every version to install is in the repository and the transaction resolves."""
    changes = plan.changes
    missing = []
    for row in changes:
        have = backend.candidates(row.package)
        if row.pinned not in have:
            avail = ", ".join(have[:6]) if have else "none"
            missing.append(f"{row.component}: {row.package}={row.pinned} is not in the repository (available: {avail})")
    if missing:
        raise ApplyError("pinned version(s) not available; nothing was changed:\n  " + "\n  ".join(missing),
                         EXIT_UNAVAILABLE)
    if changes:
        try:
            backend.simulate([(r.package, r.pinned) for r in changes])
        except PackageError as e:
            raise ApplyError(f"the install would not resolve; nothing was changed:\n{e}") from None


def _unit_exists(paths: Paths, unit: str) -> bool:
    return any(paths.host(d).joinpath(unit).exists()
               for d in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"))


def enable_service(runner: Runner, paths: Paths, unit: str, report: ApplyReport) -> None:
    if not _unit_exists(paths, unit):
        report.warnings.append(f"{unit} is not installed; the driver packages should provide it")
        return
    state = runner.systemctl("is-enabled", unit, check=False).stdout.strip()
    if state != "enabled":
        runner.systemctl("enable", unit)
        report.changed.append(f"enabled {unit}")
    if not runner.live:
        return
    if runner.systemctl("is-active", unit, check=False).returncode != 0:
        # Fails until the nvidia module is loaded (after the reboot apply asks for).
        p = runner.systemctl("start", unit, check=False)
        if p.returncode == 0:
            report.changed.append(f"started {unit}")
        else:
            report.warnings.append(f"{unit} enabled but not started: {(p.stderr or '').strip()[-200:]}")


def rebuild_initramfs(runner: Runner, paths: Paths, family: str, report: ApplyReport) -> None:
    if family == "rhel":
        tool, argv = "/usr/bin/dracut", ["dracut", "-f", "--regenerate-all"]
    else:
        tool, argv = "/usr/sbin/update-initramfs", ["update-initramfs", "-u", "-k", "all"]
    if not paths.host(tool).exists():
        report.warnings.append(f"{tool} not present: no initramfs to rebuild on this root")
        return
    runner.run(argv)
    report.changed.append("rebuilt initramfs")


def apply(manifest: Manifest, det: Detection, paths: Paths, runner: Runner, backend: Backend,
          *, progress: bool = False, log: Callable[[str], None] = print) -> ApplyReport:
    report = ApplyReport()
    family = det.os.family
    try:
        repo_changed, snapshot = install_repo(manifest.repository, paths, family)
    except RepoError as e:
        raise ApplyError(str(e), EXIT_MANIFEST) from None
    try:
        log("refreshing the package index of the NVIDIA repository ...")
        backend.refresh(DNF_REPO_ID if family == "rhel" else APT_SOURCE_REL)
        wanted = [p.package for p in pins(manifest, len(det.nvswitches))]
        plan = compute_plan(manifest, det, backend.installed(wanted))
        preflight(plan, backend)
    except (ApplyError, PackageError) as e:
        restore(snapshot)
        if isinstance(e, ApplyError):
            raise
        raise ApplyError(f"preflight failed; nothing was changed:\n{e}") from None
    if repo_changed:
        report.changed.append("configured the NVIDIA package repository")

    changes = plan.changes
    if family == "rhel" and manifest.driver.dnf_module_stream and changes:
        backend.enable_module_stream(manifest.driver.branch, manifest.driver.kernel_modules)  # type: ignore[attr-defined]
    if changes:
        unheld = [r.package for r in changes if r.held]
        backend.unhold(unheld)
        log("installing: " + ", ".join(f"{r.package}={r.pinned}" for r in changes))
        try:
            backend.install([(r.package, r.pinned) for r in changes], progress)
        except PackageError:
            # The transaction failed as a whole; leave the holds as they were.
            backend.hold(unheld)
            raise
        report.changed += [f"{r.action} {r.package} {r.installed or '-'} -> {r.pinned}" for r in changes]
    to_hold = [r.package for r in plan.rows if r.action in CHANGES or not r.held]
    if to_hold:
        backend.hold(to_hold)
        report.changed.append("held " + ", ".join(to_hold))

    blacklist_changed = _write_if_different(paths, NOUVEAU_CONF, NOUVEAU_TEXT)
    if family == "rhel":
        blacklist_changed |= _write_if_different(paths, DRACUT_CONF, DRACUT_TEXT)
    if blacklist_changed:
        report.changed.append(f"blacklisted nouveau ({NOUVEAU_CONF})")
        rebuild_initramfs(runner, paths, family, report)

    enable_service(runner, paths, PERSISTENCED, report)
    if any(p.component == "fabric_manager" for p in plan.pins):
        enable_service(runner, paths, FABRICMANAGER, report)

    report.reboot_reasons = list(plan.reboot_reasons)
    if any(r.reboot for r in changes) and not report.reboot_reasons:
        report.reboot_reasons.append("the nvidia kernel module changed")
    return report
