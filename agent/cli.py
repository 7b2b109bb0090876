"""The `infernode` command line.

Subcommands that plugins bring are listed in agent.plugins.COMMANDS and imported
only when used, so `infernode version` does not import NVML, bcc or aiohttp.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent import __version__
from agent.cli_options import EXIT_CONFIG, config_option, install_loader, root_option

if TYPE_CHECKING:
    from agent.plugins import Config

class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        from agent.plugins import COMMANDS

        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        own = super().get_command(ctx, name)
        if own is not None:
            # Before the plugin list, whose import costs pydantic and the collectors.
            return own
        from agent.plugins import COMMANDS

        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


def load_or_exit(config_path: Path | None) -> Config:
    from agent.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as e:
        click.echo(f"infernode: invalid config\n{e}", err=True)
        sys.exit(EXIT_CONFIG)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """infernode: node agent for GPU inference fleets."""
    # Plugin commands load the config through agent.cli_options.load_or_exit.
    install_loader(ctx, load_or_exit)


@main.command()
def version() -> None:
    """Print the agent version."""
    click.echo(f"infernode {__version__}")


@main.command()
@config_option
@root_option
def run(config_path: Path | None, root: Path) -> None:
    """Run the agent daemon (foreground; systemd runs it as infernode.service)."""
    from agent.config import DEFAULT_CONFIG_PATH
    from agent.daemon import Daemon, ListenError
    from agent.fdlimit import raise_open_files_limit
    from agent.logs import setup_logging
    from agent.paths import Paths
    from agent.plugins import subsystem_classes

    # Name the file actually loaded, so /readyz, logs and SIGHUP speak of it.
    if config_path is None and DEFAULT_CONFIG_PATH.exists():
        config_path = DEFAULT_CONFIG_PATH
    config = load_or_exit(config_path)
    setup_logging(config.log.level, config.log.format)
    raise_open_files_limit()

    async def _main() -> int:
        daemon = Daemon(config, config_path, Paths(root), subsystem_classes())
        return await daemon.run()

    try:
        code = asyncio.run(_main())
    except ListenError as e:
        click.echo(f"infernode: {e} (server.listen in {config_path or 'the built-in defaults'})", err=True)
        sys.exit(1)
    sys.exit(code)


@main.group()
def config() -> None:
    """Validate configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def config_check(file: Path) -> None:
    """Validate FILE; exit 2 with each problem (file, key path, value, expected).

    Beyond the schema, what the daemon would only find at start: the tuning profile
    and its overrides are resolved against the profiles and the tunables."""
    from tuning.profiles import ProfileError, load_profile

    cfg = load_or_exit(file)
    t = cfg.tuning
    try:
        load_profile(t.profile, [Path(d) for d in t.profile_dirs], overrides=t.overrides, overrides_source=str(file))
    except ProfileError as e:
        click.echo(f"infernode: invalid config\n{file}: tuning.profile: {e}", err=True)
        sys.exit(2)
    click.echo(f"{file}: ok")


@main.command()
@config_option
@root_option
@click.option("--openmetrics", is_flag=True, help="OpenMetrics exposition (with exemplars).")
def metrics(config_path: Path | None, root: Path, openmetrics: bool) -> None:
    """Run one collection and print the exposition to stdout."""
    from agent.exposition import render
    from agent.paths import Paths
    from agent.telemetry import Telemetry

    cfg = load_or_exit(config_path)
    telemetry = Telemetry.build(cfg, Paths(root))
    telemetry.runtime.start()
    try:
        body, _ = render(telemetry.runtime.scrape(), telemetry.catalog, openmetrics=openmetrics)
    finally:
        telemetry.runtime.stop()
    sys.stdout.buffer.write(body)


@main.command()
@config_option
@root_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(config_path: Path | None, root: Path, as_json: bool) -> None:
    """Check every subsystem and say how to fix what is wrong. Exit 1 when unhealthy."""
    from agent.doctor import doctor_rows, format_table, healthy
    from agent.paths import Paths
    from agent.plugins import subsystem_classes
    from agent.telemetry import Telemetry

    cfg = load_or_exit(config_path)
    telemetry = Telemetry.build(cfg, Paths(root))
    telemetry.runtime.start()
    try:
        extra = []
        for cls in subsystem_classes():
            extra.extend(cls.doctor_offline(cfg, Paths(root)))
        rows = doctor_rows(telemetry, extra)
    finally:
        telemetry.runtime.stop()
    if as_json:
        click.echo(json.dumps({"healthy": healthy(rows), "checks": [r.to_json() for r in rows]}, indent=2))
    else:
        click.echo(format_table(rows))
    sys.exit(0 if healthy(rows) else 1)


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 when a generated document is stale.")
@click.option("--write", is_flag=True, help="Regenerate the documents.")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=Path("."), show_default=True)
def docs(check: bool, write: bool, repo: Path) -> None:
    """Generate docs/metrics.md (and other generated docs) from the catalog."""
    from agent.catalog import lint
    from agent.docs import generated_docs
    from agent.plugins import build_catalog

    catalog = build_catalog()
    problems = lint(catalog)
    if problems:
        click.echo("metric catalog problems:\n  " + "\n  ".join(problems), err=True)
        sys.exit(1)
    stale = []
    for rel, text in generated_docs(catalog).items():
        path = repo / rel
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(rel)
            if write:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if check and stale and not write:
        click.echo("stale generated docs (run `infernode docs --write`): " + ", ".join(map(str, stale)), err=True)
        sys.exit(1)
    if not check and not write:
        for text in generated_docs(catalog).values():
            click.echo(text)
    elif write:
        click.echo("wrote " + (", ".join(map(str, stale)) or "nothing (up to date)"))
