"""`infernode tune plan|apply|verify|rollback|cpuset`.

Exit codes: 0 done/clean, 1 drift or a failed (rolled back) apply, 2 a bad
profile or config (nothing changed), 3 applied or clean but boot parameters wait
for a reboot (as `bootstrap apply`; infernode never reboots).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli_options import EXIT_CONFIG, config_option, load_or_exit, root_option
from tuning.settings import TuningConfig

EXIT_PENDING_REBOOT = 3

if TYPE_CHECKING:
    from tuning.engine import Engine, Row

profile_option = click.option("--profile", default=None, help="Profile name (default: tuning.profile from the config).")


def _engine(config_path: Path | None, root: Path, profile: str | None) -> Engine:
    from agent.paths import Paths
    from tuning.engine import build_engine
    from tuning.profiles import ProfileError

    cfg: TuningConfig = load_or_exit(config_path)
    try:
        return build_engine(Paths(root), cfg.tuning, profile, source=str(config_path or "config"))
    except ProfileError as e:
        click.echo(f"infernode: invalid tuning profile\n{e}", err=True)
        sys.exit(EXIT_CONFIG)


def format_rows(rows: list[Row]) -> str:
    from agent.table import format_rows as table

    return table(("TUNABLE", "TARGET", "CURRENT", "DESIRED", "ACTION"), [
        (r.tunable, r.target, "-" if r.current is None else (r.current or "(unset)"), r.desired,
         r.action + (f" ({r.note})" if r.note and r.action != "ok" else ""))
        for r in rows
    ])


@click.group()
def tune() -> None:
    """Host tuning: plan, apply, verify and roll back a profile."""


@tune.command()
@config_option
@root_option
@profile_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan(config_path: Path | None, root: Path, profile: str | None, as_json: bool) -> None:
    """Show each knob: current value, desired value, and what apply would do."""
    engine = _engine(config_path, root, profile)
    rows = engine.plan()
    if as_json:
        click.echo(json.dumps({"profile": engine.profile.name, "rows": [r.to_json() for r in rows]}, indent=2))
    else:
        click.echo(f"profile {engine.profile.name}")
        click.echo(format_rows(rows))


@tune.command()
@config_option
@root_option
@profile_option
def apply(config_path: Path | None, root: Path, profile: str | None) -> None:
    """Apply the profile; originals are saved first, any failure rolls back."""
    from tuning.engine import EngineError

    engine = _engine(config_path, root, profile)
    try:
        changed, recovered = engine.apply()
    except EngineError as e:
        click.echo(f"infernode: tuning apply failed: {e}", err=True)
        sys.exit(1)
    if recovered:
        click.echo(f"restored {len(recovered)} knob(s) left by an unfinished run")
    for r in changed:
        click.echo(f"set {r.tunable} {r.target}: {r.current} -> {r.desired}")
    after = engine.plan()
    for r in after:
        if r.action == "hold":
            click.echo(f"hold {r.tunable} {r.target}: {r.desired} (only while the agent daemon runs)")
    pending = _report_pending(after)
    # "no changes" is what the Ansible role's changed_when looks for.
    click.echo(f"profile {engine.profile.name}: " + (f"{len(changed)} knob(s) changed" if changed else "no changes"))
    if pending:
        sys.exit(EXIT_PENDING_REBOOT)


def _report_pending(rows: list[Row]) -> list[Row]:
    from tuning.engine import PENDING

    pending = [r for r in rows if r.action == PENDING]
    for r in pending:
        click.echo(f"pending reboot {r.tunable}: {r.desired} ({r.note})")
    if pending:
        click.echo(f"{len(pending)} boot parameter(s) take effect at the next reboot; infernode does not reboot",
                   err=True)
    return pending


@tune.command()
@config_option
@root_option
@profile_option
def verify(config_path: Path | None, root: Path, profile: str | None) -> None:
    """Exit 1 and list each knob that is not in its desired state; exit 3 when the
    only difference is boot parameters written but not yet booted."""
    from tuning.engine import ERROR, SET

    engine = _engine(config_path, root, profile)
    rows = engine.plan()
    drift = [r for r in rows if r.action in (SET, ERROR)]
    pending = _report_pending(rows)
    for r in drift:
        click.echo(f"drift {r.tunable} {r.target}: current {r.current}, desired {r.desired}"
                   + (f" ({r.note})" if r.note else ""))
    if drift:
        click.echo(f"profile {engine.profile.name}: {len(drift)} drift(s)", err=True)
        sys.exit(1)
    if pending:
        click.echo(f"profile {engine.profile.name}: written, pending reboot")
        sys.exit(EXIT_PENDING_REBOOT)
    click.echo(f"profile {engine.profile.name}: in desired state")


@tune.command()
@config_option
@root_option
@profile_option
def rollback(config_path: Path | None, root: Path, profile: str | None) -> None:
    """Restore every original saved by apply, in reverse order (idempotent)."""
    from tuning.engine import EngineError
    from tuning.engine import rollback as do_rollback

    engine = _engine(config_path, root, profile)
    try:
        restored = do_rollback(engine)
    except EngineError as e:
        click.echo(f"infernode: tuning rollback incomplete: {e}", err=True)
        sys.exit(1)
    click.echo(f"restored {len(restored)} knob(s)" if restored else "nothing to roll back")


@tune.command()
@config_option
@root_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cpuset(config_path: Path | None, root: Path, as_json: bool) -> None:
    """The inference CPU set: GPU-local CPUs minus housekeeping CPUs."""
    from agent.paths import Paths
    from tuning.topology import inference_cpuset

    cfg: TuningConfig = load_or_exit(config_path)
    info = inference_cpuset(Paths(root), cfg.tuning)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(info["cpus"])
