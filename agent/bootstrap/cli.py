"""`infernode bootstrap plan | apply | verify`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.bootstrap.settings import BootstrapSettings

if TYPE_CHECKING:
    from agent.bootstrap.detect import Detection
    from agent.bootstrap.manifest import Manifest
    from agent.bootstrap.packages import Backend, Runner
    from agent.paths import Paths

DEFAULT_MANIFEST = BootstrapSettings().manifest

manifest_option = click.option(
    "--manifest", type=click.Path(path_type=Path, dir_okay=False), default=DEFAULT_MANIFEST, show_default=True,
    help="The manifest (the fleet's shipped one).")
override_option = click.option(
    "--override", "overrides", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
    help="Operator override merged over the manifest (repeatable; later wins).")
root_option = click.option(
    "--root", type=click.Path(path_type=Path, file_okay=False, exists=True), default=Path("/"), show_default=True,
    help="Root to inspect and change (package commands run in a chroot when not /).")


def _load(manifest: Path, overrides: tuple[Path, ...]) -> Manifest:
    from agent.bootstrap.apply import EXIT_MANIFEST
    from agent.bootstrap.manifest import ManifestError, load_manifest

    try:
        return load_manifest(manifest, overrides)
    except ManifestError as e:
        click.echo(f"infernode bootstrap: invalid manifest\n{e}", err=True)
        sys.exit(EXIT_MANIFEST)


def _context(root: Path) -> tuple[Paths, Detection, Runner, Backend]:
    from agent.bootstrap.detect import detect
    from agent.bootstrap.packages import PackageError, Runner, backend_for
    from agent.paths import Paths

    paths = Paths(root)
    det = detect(paths)
    runner = Runner(root)
    try:
        backend = backend_for(det.os.family, runner)
    except PackageError as e:
        click.echo(f"infernode bootstrap: {e}", err=True)
        sys.exit(1)
    return paths, det, runner, backend


@click.group()
def bootstrap() -> None:
    """Bring up the NVIDIA driver, CUDA, cuDNN, NCCL, DCGM, container toolkit and fabric manager."""


@bootstrap.command()
@manifest_option
@override_option
@root_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan(manifest: Path, overrides: tuple[Path, ...], root: Path, as_json: bool) -> None:
    """Show what apply would do; changes nothing. Exit 0 when converged, 1 otherwise."""
    from agent.bootstrap.manifest import pins
    from agent.bootstrap.plan import compute_plan, format_plan

    m = _load(manifest, overrides)
    _, det, _, backend = _context(root)
    wanted = [p.package for p in pins(m, len(det.nvswitches))]
    p = compute_plan(m, det, backend.installed(wanted))
    if as_json:
        click.echo(json.dumps(p.to_json(det), indent=2))
    else:
        click.echo(format_plan(p))
    sys.exit(0 if p.converged and not p.reboot_reasons else 1)


@bootstrap.command()
@manifest_option
@override_option
@root_option
@click.option("--allow-reboot", is_flag=True, help="Reboot the node when the change needs it.")
def apply(manifest: Path, overrides: tuple[Path, ...], root: Path, allow_reboot: bool) -> None:
    """Install the pinned versions, hold them, blacklist nouveau, enable services.

    \b
    Exit status: 0 converged; 1 a step failed; 2 invalid manifest;
    3 applied, reboot required (not done without --allow-reboot);
    4 a pinned version is not in the repository (nothing changed).
    """
    from agent.bootstrap.apply import ApplyError
    from agent.bootstrap.apply import apply as do_apply
    from agent.bootstrap.packages import PackageError

    m = _load(manifest, overrides)
    paths, det, runner, backend = _context(root)
    progress = sys.stdout.isatty()
    try:
        report = do_apply(m, det, paths, runner, backend, progress=progress, log=click.echo)
    except ApplyError as e:
        click.echo(f"infernode bootstrap apply: {e}", err=True)
        sys.exit(e.status)
    except PackageError as e:
        click.echo(f"infernode bootstrap apply: failed: {e}", err=True)
        sys.exit(1)
    if report.changed:
        for line in report.changed:
            click.echo(f"changed: {line}")
    else:
        click.echo("nothing to do: every pinned component is installed at its version and held")
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    if report.reboot_reasons:
        for r in report.reboot_reasons:
            click.echo(f"REBOOT REQUIRED: {r}")
        if allow_reboot and runner.live:
            click.echo("rebooting (--allow-reboot)")
            runner.systemctl("reboot", check=False)
        elif allow_reboot:
            # systemctl inside a chroot could reach the host's systemd and reboot it.
            click.echo(f"not rebooting: {root} is not the running system")
        else:
            click.echo("not rebooting: run again with --allow-reboot, or reboot the node yourself")
    sys.exit(report.status)


@bootstrap.command()
@manifest_option
@override_option
@root_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify(manifest: Path, overrides: tuple[Path, ...], root: Path, as_json: bool) -> None:
    """Check the running node against the manifest (read-only). Exit 1 on any failure."""
    from agent.bootstrap.verify import format_checks
    from agent.bootstrap.verify import verify as do_verify

    m = _load(manifest, overrides)
    _, det, runner, _ = _context(root)
    checks = do_verify(m, det, runner)
    ok = all(c.ok for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": ok, "checks": [c.to_json() for c in checks]}, indent=2))
    else:
        click.echo(format_checks(checks))
    sys.exit(0 if ok else 1)
