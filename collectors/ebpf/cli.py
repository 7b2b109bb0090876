"""`infernode ebpf status`: each program, whether it can run here, and why not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from agent.cli_options import config_option, load_or_exit, root_option
from collectors.ebpf.settings import EbpfConfig


@click.group()
def ebpf() -> None:
    """Kernel-event telemetry (eBPF) programs."""


@ebpf.command()
@config_option
@root_option
@click.option("--load", is_flag=True, help="Also compile and attach the programs (seconds of clang) to prove they load.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path | None, root: Path, load: bool, as_json: bool) -> None:
    """List each eBPF program, whether it is on, and why not."""
    import logging

    from agent.collector import CollectorContext
    from agent.events import EventStore
    from agent.paths import Paths
    from agent.table import format_rows
    from collectors.ebpf.collector import EbpfCollector

    cfg: EbpfConfig = load_or_exit(config_path)
    settings = cfg.collectors.ebpf
    log = logging.getLogger("infernode.collector.ebpf")
    log.disabled = True  # the table says it all; no duplicate warning lines
    ctx = CollectorContext(paths=Paths(root), events=EventStore(), settings=settings, log=log)
    collector = EbpfCollector(ctx)
    if load:
        collector.start()
        collector.loaded.wait(300)
        collector.stop()
    else:
        from collectors.ebpf.probe import probe
        from collectors.ebpf.programs import PROGRAMS

        wanted = [p for p in PROGRAMS if collector.state[p.name].state == "loading"]
        for name, verdict in probe(Paths(root), wanted).items():
            if verdict.ok:
                collector.state[name].state = "ready"
                collector.state[name].reason = "checks passed (use --load to compile and attach)"
            else:
                collector.state[name].state = "down"
                collector.state[name].reason, collector.state[name].fix = verdict.reason, verdict.fix
    rows = [(name, st.state, st.reason or ("loaded and attached" if st.up else ""), st.fix)
            for name, st in collector.state.items()]
    enabled = bool(settings.enabled if settings.enabled is not None else EbpfCollector.default_enabled)
    if as_json:
        click.echo(json.dumps({
            "collector_enabled": enabled,
            "programs": [dict(zip(("program", "state", "reason", "fix"), r, strict=False)) for r in rows],
        }, indent=2))
    else:
        if not enabled:
            click.echo("collector ebpf is disabled: set collectors.ebpf.enabled: true to run these programs\n")
        click.echo(format_rows(("PROGRAM", "STATE", "WHY", "FIX"), rows))
    sys.exit(0)
