"""`infernode workers` and `infernode drain`: ask the running agent over HTTP."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import click

from agent.cli import config_option, load_or_exit

url_option = click.option("--url", default=None,
                          help="Agent base URL (default: from server.listen in the config).")


def _agent_url(config_path: Path | None, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    from agent.units import parse_listen

    host, port = parse_listen(load_or_exit(config_path).server.listen)
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _call(method: str, url: str, timeout: float) -> dict:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            detail = json.loads(e.read()).get("error", "")
        except ValueError:
            detail = ""
        click.echo(f"infernode: {url}: {e.code} {detail}".rstrip(), err=True)
        sys.exit(1)
    except (urllib.error.URLError, OSError) as e:
        click.echo(f"infernode: cannot reach the agent at {url}: {getattr(e, 'reason', e)} "
                   "(is infernode.service running?)", err=True)
        sys.exit(1)


def format_workers(data: dict) -> str:
    from agent.doctor import format_rows

    headers = ("WORKER", "UNIT", "GPUS", "PORT", "STATE", "PHASE", "HEALTHY", "PID", "RESTARTS", "PROBLEM")
    rows = []
    for w in data.get("workers", []):
        healthy = {True: "yes", False: "no", None: "-"}[w.get("healthy")]
        rows.append((w["worker"], w["unit"], w["gpus"] or "-", str(w["port"]), w["active_state"], w["phase"],
                     healthy, str(w["main_pid"] or "-"), str(w["restarts"]), w.get("problem") or ""))
    table = format_rows(headers, rows)
    node = "node: schedulable" if data.get("schedulable", True) else f"node: NOT schedulable ({data.get('reason')})"
    return table + "\n" + node


@click.command("workers")
@config_option
@url_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def workers(config_path: Path | None, url: str | None, as_json: bool) -> None:
    """Status of the vLLM workers the agent supervises."""
    data = _call("GET", _agent_url(config_path, url) + "/workers", timeout=10)
    click.echo(json.dumps(data, indent=2) if as_json else format_workers(data))


@click.command("drain")
@click.argument("worker")
@config_option
@url_option
@click.option("--timeout", type=float, default=None,
              help="Seconds to wait for in-flight requests (default: the worker's drain_timeout).")
def drain(worker: str, config_path: Path | None, url: str | None, timeout: float | None) -> None:
    """Stop WORKER admitting requests, wait for in-flight ones (up to the timeout), then stop it."""
    base = _agent_url(config_path, url)
    query = f"?timeout={timeout:g}" if timeout is not None else ""
    # The agent answers when the worker is down: allow for the drain plus systemd's stop.
    data = _call("POST", f"{base}/workers/{worker}/drain{query}", timeout=(timeout or 600) + 120)
    if data.get("drained"):
        click.echo(f"{worker}: drained in {data['waited_s']:.1f}s and stopped")
    else:
        click.echo(f"{worker}: in-flight requests still running after {data['waited_s']:.1f}s; stopped anyway")
