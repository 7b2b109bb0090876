"""`infernode tune plan|apply|verify|rollback|cpuset|bench`.

Exit codes: 0 done/clean, 1 drift or a failed (rolled back) apply, 2 a bad
profile or config (nothing changed), 3 applied or clean but boot parameters wait
for a reboot (as `bootstrap apply`; infernode never reboots).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

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
        if r.action == "refused":
            click.echo(f"refused {r.tunable} {r.target}: {r.note}")
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


@tune.command()
@config_option
@profile_option
@click.option("--requests", type=click.IntRange(1, 100000), default=64, show_default=True,
              help="Requests per side and round.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=4, show_default=True,
              help="Requests in flight at once.")
@click.option("--prompt-tokens", type=click.IntRange(1, 1_000_000), default=512, show_default=True)
@click.option("--output-tokens", type=click.IntRange(1, 1_000_000), default=128, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Rounds; each measures both sides, in alternating order.")
@click.option("--worker", "worker_name", default=None, help="Worker to load (default: the only one configured).")
@click.option("--url", default=None, help="The worker's base URL instead, e.g. http://127.0.0.1:8000.")
@click.option("--model", default=None, help="Model name to request (default: the first the worker lists).")
@click.option("--keep", is_flag=True, help="Leave the profile applied afterwards.")
@click.option("--force", is_flag=True, help="Run even though the node may be taking traffic.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench(config_path: Path | None, profile: str | None, requests: int, concurrency: int, prompt_tokens: int,
          output_tokens: int, rounds: int, worker_name: str | None, url: str | None, model: str | None,
          keep: bool, force: bool, as_json: bool) -> None:
    """Measure what a profile buys: TTFT, TPOT and e2e under a fixed load on a
    serving worker, with the host as it is and with the profile applied, over
    alternating rounds; the profile is taken back afterwards unless --keep.

    Exit 0 measured, 1 refused or failed (the host put back), 2 bad input."""
    import asyncio

    from tuning.bench.load import LoadError, LoadSpec, served_model
    from tuning.bench.runner import BenchError
    from tuning.bench.runner import bench as run_bench

    cfg = load_or_exit(config_path)
    engine = _engine(config_path, Path("/"), profile)
    base = _worker_url(cfg, worker_name, url)
    if not force:
        _refuse_if_serving(cfg)
    if cfg.tuning.mode == "enforce" and not force:
        _fail(f"the agent enforces profile {cfg.tuning.profile} (tuning.mode: enforce) and would undo the bench's "
              "changes at its next verification: set tuning.mode: audit for the bench, or --force")
    try:
        model = model or asyncio.run(served_model(base))
    except LoadError as e:
        _fail(f"no worker answers at {base}: {e}")
    spec = LoadSpec(base, model, requests, concurrency, prompt_tokens, output_tokens)
    try:
        report = run_bench(engine, spec, rounds, keep, progress=lambda m: click.echo(f"bench: {m}", err=True))
    except BenchError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    click.echo(format_bench(report))


def _fail(message: str) -> NoReturn:
    click.echo(f"infernode: tune bench: {message}", err=True)
    sys.exit(1)


def _worker_url(cfg: Any, name: str | None, url: str | None) -> str:  # noqa: ANN401 - the root config
    if url:
        return url.rstrip("/")
    workers = list(cfg.workers)
    if name is not None:
        chosen = [w for w in workers if w.name == name]
        if not chosen:
            click.echo(f"infernode: no worker named {name!r} in the config "
                       f"(configured: {', '.join(w.name for w in workers) or 'none'})", err=True)
            sys.exit(EXIT_CONFIG)
    elif len(workers) == 1:
        chosen = workers
    else:
        click.echo("infernode: say which worker to load: --worker NAME or --url URL "
                   f"(configured: {', '.join(w.name for w in workers) or 'none'})", err=True)
        sys.exit(EXIT_CONFIG)
    return str(chosen[0].base_url)  # as the worker supervisor reaches it


def _refuse_if_serving(cfg: Any) -> None:  # noqa: ANN401 - the root config
    """The bench changes the host under load: not on a node that takes traffic."""
    from agent.worker.cli import agent_base_url, fetch_json

    where = agent_base_url(cfg.server.listen) + "/workers"
    try:
        data = fetch_json(where, timeout=5)
    except (OSError, ValueError) as e:
        _fail(f"cannot tell whether this node takes traffic (the agent at {where}: {e}); run it with "
              "--force once the node is out of the load balancer")
    ready = [w.get("worker") for w in data.get("workers", []) if w.get("ready")]
    if data.get("schedulable", True) and ready:
        _fail(f"this node is schedulable and {', '.join(map(str, ready))} in rotation: the bench changes the "
              "host under load; `infernode cordon --reason 'tune bench'` takes it out of rotation first "
              "(or --force, once it is out of the load balancer)")


def format_bench(report: Any) -> str:  # noqa: ANN401 - tuning.bench.runner.BenchReport
    from agent.table import format_rows as table

    def ms(s: float) -> str:
        return f"{s * 1000:.1f}"

    rows = []
    for c in report.comparisons:
        pct = "" if c.difference_pct is None else f" ({c.difference_pct:+.0f}%)"
        rows.append((f"{c.metric} p{c.percentile}",
                     f"{ms(c.before.median)} ({ms(c.before.low)}-{ms(c.before.high)})",
                     f"{ms(c.after.median)} ({ms(c.after.low)}-{ms(c.after.high)})",
                     f"{c.difference * 1000:+.1f} ±{ms(c.uncertainty)}{pct}", c.verdict))
    load = report.load
    head = [f"profile {report.profile}: {report.rounds} round(s) of {load.requests} requests a side, "
            f"{load.concurrency} at a time, {load.prompt_tokens} prompt and {load.output_tokens} output tokens "
            f"({load.model} at {load.url})",
            f"changed: {', '.join(report.changed)}"]
    head += [f"not measured: {n}" for n in report.not_measured]
    tail = ["milliseconds: median of the rounds (their range); better/worse only where the ranges do not overlap",
            "profile kept applied (--keep)" if report.kept else "profile taken back: the host is as it was"]
    body = table(("METRIC", "BEFORE", "AFTER", "DIFFERENCE", "VERDICT"), rows)
    return "\n".join([*head, body, *tail])
