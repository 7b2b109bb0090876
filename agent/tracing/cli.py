"""`infernode explain TRACE_ID` and `infernode slow`: ask the running agent.

They talk to the agent's HTTP endpoint (the /debug routes), because only the
running agent has seen the requests; formatting is separate from the fetch.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from agent.cli_options import config_option, load_or_exit
from agent.tracing.settings import TracingConfig
from agent.units import parse_listen

EXIT_UNREACHABLE = 3


def default_url(listen: str) -> str:
    host, port = parse_listen(listen)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def fetch(url: str, token: str | None, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL is the operator's
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read() or b"{}")
        except ValueError:
            body = {"error": e.reason}
        return e.code, body


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f} s" if v >= 10 else f"{v * 1000:.1f} ms"


def format_explain(data: dict[str, Any]) -> str:
    out: list[str] = []
    for r in data.get("requests", []):
        lat = r["latency_seconds"]
        out.append(f"trace {r['trace_id']}  span {r['span_id']}  request {r['request_id'] or '-'}")
        out.append(f"worker {r['worker']}  model {r['model_name']}  "
                   f"tokens {r['tokens']['prompt']} in / {r['tokens']['completion']} out")
        out.append("latency  " + "  ".join(f"{k} {_ms(lat[k])}" for k in ("e2e", "ttft", "queue", "prefill", "decode", "tpot")))
        out.append("phases   " + " | ".join(f"{p['name']} {_ms(p['seconds'])}" for p in r["phases"]))
        if r["slow"]:
            out.append("slow     " + "; ".join(
                f"{s['phase']} {_ms(s['seconds'])} > {_ms(s['threshold_seconds'])} ({s['basis']})" for s in r["slow"]))
        else:
            out.append("slow     no (within SLOs and the worker's rolling p99)")
        out.append(f"verdict  {r['verdict']}")
        if r["causes"]:
            out.append("")
            out.append(f"  {'#':>2}  {'share':>6}  {'explained':>10}  cause")
            for i, c in enumerate(r["causes"], 1):
                out.append(f"  {i:>2}  {c['share'] * 100:>5.1f}%  {_ms(c['explained_seconds']):>10}  {c['text']}")
            out.append(f"  explained together: {_ms(r['explained_seconds'])} of {_ms(lat['e2e'])} e2e "
                       f"({r['explained_share'] * 100:.0f}%)")
        client = r.get("client_delay")
        if client:
            out.append("")
            out.append("  outside the span (its client, estimated):")
            out.append(f"      {client['text']}")
        if r.get("evidence"):
            out.append("")
            out.append("  evidence, each too small a share of e2e to be a cause:")
            for c in r["evidence"]:
                out.append(f"      {c['share'] * 100:>5.1f}%  {_ms(c['explained_seconds']):>10}  {c['text']}")
        events = r.get("events", [])
        if events:
            out.append("")
            out.append(f"events overlapping the request ({len(events)}):")
            start = r["start_unix_nano"]
            for ev in events[:50]:
                attrs = " ".join(f"{k}={v}" for k, v in ev["attributes"].items())
                dur = (ev["end_ns"] - ev["start_ns"]) / 1e9
                out.append(f"  {(ev['start_ns'] - start) / 1e6:>+9.1f} ms  {ev['phase']:<8} {ev['kind']:<15} "
                           f"{_ms(dur):>9}  {ev['subject']}  {attrs}".rstrip())
            if len(events) > 50:
                out.append(f"  ... {len(events) - 50} more (--json for all)")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def format_slow(data: dict[str, Any]) -> str:
    rows = data.get("slow", [])
    head = (f"{len(rows)} slow of {data.get('requests_seen', 0)} requests seen in the last "
            f"{data.get('since_seconds', 0):g} s")
    if not rows:
        return head + "\n"
    table = [("TRACE_ID", "WORKER", "E2E", "TTFT", "SLOW PHASES", "TOP CAUSE")]
    for r in rows:
        lat = r["latency_seconds"]
        table.append((r["trace_id"], r["worker"], _ms(lat["e2e"]), _ms(lat["ttft"]),
                       ",".join(f"{s['phase']}({s['basis']})" for s in r["slow"]), r["verdict"]))
    widths = [max(len(str(row[i])) for row in table) for i in range(5)]
    lines = ["  ".join(str(v).ljust(widths[i]) for i, v in enumerate(row[:5])) + "  " + row[5] for row in table]
    return head + "\n" + "\n".join(lines) + "\n"


def _target(config_path: Path | None, url: str | None, token: str | None) -> tuple[str, str | None]:
    if url is None or token is None:
        cfg: TracingConfig = load_or_exit(config_path)
        url = url or default_url(cfg.server.listen)
        token = token if token is not None else (os.environ.get("INFERNODE_EXPLAIN_TOKEN") or cfg.explain.token)
    return url.rstrip("/"), token


def _call(url: str, token: str | None) -> tuple[int, dict[str, Any]]:
    try:
        return fetch(url, token)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        click.echo(f"infernode: cannot reach the agent at {url}: {reason} (is `infernode run` up? --url)", err=True)
        sys.exit(EXIT_UNREACHABLE)


url_option = click.option("--url", help="The agent's HTTP endpoint (default: from server.listen in the config).")
token_option = click.option("--token", help="Bearer token for /debug (default: $INFERNODE_EXPLAIN_TOKEN or explain.token).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the agent's JSON answer.")


@click.command()
@click.argument("trace_id")
@config_option
@url_option
@token_option
@json_option
def explain(trace_id: str, config_path: Path | None, url: str | None, token: str | None, as_json: bool) -> None:
    """Why was the request with TRACE_ID slow: its phases, the node events that
    overlapped it and the causes ranked by the share of latency they explain."""
    base, tok = _target(config_path, url, token)
    status, data = _call(f"{base}/debug/explain?trace_id={urllib.parse.quote(trace_id)}", tok)
    if status != 200:
        click.echo(f"infernode: {data.get('error', f'HTTP {status}')}", err=True)
        sys.exit(1)
    click.echo(json.dumps(data, indent=2) if as_json else format_explain(data), nl=as_json)


@click.command()
@click.option("--since", default="5m", show_default=True, help="How far back, e.g. 30s, 5m, 1h.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 1000), help="How many requests.")
@config_option
@url_option
@token_option
@json_option
def slow(since: str, top: int, config_path: Path | None, url: str | None, token: str | None, as_json: bool) -> None:
    """The slowest requests flagged slow (over an SLO or the worker's rolling p99),
    each with its top-ranked cause."""
    base, tok = _target(config_path, url, token)
    query = urllib.parse.urlencode({"since": since, "top": top})
    status, data = _call(f"{base}/debug/slow?{query}", tok)
    if status != 200:
        click.echo(f"infernode: {data.get('error', f'HTTP {status}')}", err=True)
        sys.exit(2 if status == 400 else 1)
    click.echo(json.dumps(data, indent=2) if as_json else format_slow(data), nl=as_json)
