"""`infernode cost`: what each worker's GPUs cost over a window, from the running
agent (only it has booked them). Formatting is separate from the fetch."""

from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import click

from agent.cli_options import config_option
from agent.table import format_rows
from agent.units import parse_duration

MAX_SINCE_S = 7 * 86400


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _share(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def format_cost(data: dict[str, Any]) -> str:
    cur = data.get("currency")
    rows = [(w["worker"], w["model_name"] or "-", _num(w["gpu_hours"], ".3f"), _share(w["busy_share"]),
             _share(w["idle_share"]), str(w["prompt_tokens"]), str(w["completion_tokens"]),
             _num(w["cost"], ".4f"), _num(w["cost_per_million_tokens"], ".4f"))
            for w in data.get("workers", [])]
    unit = cur or "no price"
    head = ("WORKER", "MODEL", "GPU-HOURS", "BUSY", "IDLE", "TOKENS IN", "TOKENS OUT", f"COST ({unit})",
            f"{unit} / M TOKENS")
    out = [f"last {data['since_seconds'] / 3600:g} h" + (f": {data['note']}" if data.get("note") else "")]
    out.append(format_rows(head, rows) if rows else "no worker has held a GPU yet")
    if cur is None:
        out.append("no price configured: set cost.gpu_hour_price or cost.default_gpu_hour_price for costs")
    return "\n".join(out) + "\n"


@click.command("cost")
@click.option("--since", default="1h", show_default=True, help="How far back, e.g. 30m, 1h, 1d (to the minute).")
@config_option
@click.option("--url", help="The agent's HTTP endpoint (default: from server.listen in the config).")
@click.option("--json", "as_json", is_flag=True, help="Print the agent's JSON answer.")
def cost(since: str, config_path: Path | None, url: str | None, as_json: bool) -> None:
    """GPU-hours held, busy and idle shares, tokens, cost and cost per million
    tokens of each worker over the last SINCE, at the configured list prices."""
    from agent.tracing.cli import _call, default_url

    try:
        seconds = parse_duration(since)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    if not 0 < seconds <= MAX_SINCE_S:
        raise click.BadParameter(f"must be above 0 and at most {MAX_SINCE_S // 86400} days", param_hint="--since")
    if url is None:
        from agent.cli_options import load_or_exit
        from agent.cost.settings import CostConfig

        cfg: CostConfig = load_or_exit(config_path)
        url = default_url(cfg.server.listen)
    status, data = _call(f"{url.rstrip('/')}/cost?{urllib.parse.urlencode({'since': seconds})}", None)
    if status != 200:
        click.echo(f"infernode: {data.get('error', f'HTTP {status}')}", err=True)
        sys.exit(2 if status == 400 else 1)
    click.echo(json.dumps(data, indent=2) if as_json else format_cost(data), nl=as_json)
