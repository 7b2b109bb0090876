"""`infernode workers`, `infernode drain`, `infernode cordon` and `infernode uncordon`:
ask the running agent over HTTP."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import click

from agent.cli_options import config_option, load_or_exit
from agent.worker.settings import WorkerConfig

url_option = click.option("--url", default=None,
                          help="Agent base URL (default: from server.listen in the config).")


def agent_base_url(listen: str) -> str:
    """The agent's URL on this host from server.listen."""
    from agent.units import parse_listen

    host, port = parse_listen(listen)
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def fetch_json(url: str, timeout: float) -> dict:
    """GET a JSON object from the agent; OSError (URLError included) when it cannot."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        data = json.loads(r.read())
    if not isinstance(data, dict):
        raise OSError(f"{url} did not answer a JSON object")
    return data


def _agent_url(config_path: Path | None, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    cfg: WorkerConfig = load_or_exit(config_path)
    return agent_base_url(cfg.server.listen)


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
    from agent.table import format_rows

    headers = ("WORKER", "GPUS", "PORT", "STATE", "PHASE", "HEALTHY", "READY", "PID", "RESTARTS", "VLLM",
               "STARTUP", "PROBLEM")
    rows = []
    for w in data.get("workers", []):
        healthy = {True: "yes", False: "no", None: "-"}[w.get("healthy")]
        ready = "yes" if w.get("ready") else "no"
        rows.append((w["worker"], w["gpus"] or "-", str(w["port"]), w["active_state"], w["phase"],
                     healthy, ready, str(w["main_pid"] or "-"), str(w["restarts"]), w.get("vllm_version") or "-",
                     format_startup(w.get("startup_phases") or {}),
                     w.get("problem") or ("" if w.get("ready") else w.get("ready_reason", ""))))
    table = format_rows(headers, rows)
    node = "node: schedulable" if data.get("schedulable", True) else f"node: NOT schedulable ({data.get('reason')})"
    return table + "\n" + node


def format_startup(phases: dict[str, float], most: int = 3) -> str:
    """Where the latest start's time went, the longest phases first: "load_weights 41.2s, ..."."""
    if not phases:
        return "-"
    top = sorted(phases.items(), key=lambda kv: kv[1], reverse=True)[:most]
    return ", ".join(f"{k} {v:.1f}s" for k, v in top) + (" ..." if len(phases) > most else "")


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
@click.option("--timeout", type=click.FloatRange(0, 86400), default=None,
              help="Seconds to wait for in-flight requests (default: the worker's drain_timeout).")
@click.option("--deregister-delay", type=click.FloatRange(0, 3600), default=None,
              help="Seconds between taking the worker out of rotation and SIGTERM "
                   "(default: the worker's deregister_delay).")
def drain(worker: str, config_path: Path | None, url: str | None, timeout: float | None,
          deregister_delay: float | None) -> None:
    """Take WORKER out of rotation (GET /workers/WORKER/ready turns 503), wait for the
    load balancers (deregister_delay), SIGTERM vLLM, wait for in-flight requests (up to
    the timeout), then stop it."""
    base = _agent_url(config_path, url)
    params = [f"{k}={v:g}" for k, v in (("timeout", timeout), ("deregister_delay", deregister_delay))
              if v is not None]
    query = "?" + "&".join(params) if params else ""
    # The agent answers when the worker is down: allow for the delay, the drain and systemd's stop.
    wait = (deregister_delay if deregister_delay is not None else 3600) + (timeout or 600) + 120
    data = _call("POST", f"{base}/workers/{worker}/drain{query}", timeout=wait)
    out = data.get("out_of_rotation_s", 0.0)
    if data.get("drained"):
        click.echo(f"{worker}: out of rotation {out:.1f}s, drained in {data['waited_s']:.1f}s and stopped")
    else:
        click.echo(f"{worker}: out of rotation {out:.1f}s; in-flight requests still running after "
                   f"{data['waited_s']:.1f}s; stopped anyway")


@click.command("cordon")
@config_option
@url_option
@click.option("--reason", required=True, help="What the node is out of rotation for (one line).")
def cordon(config_path: Path | None, url: str | None, reason: str) -> None:
    """Take the node out of rotation: every worker's GET /workers/NAME/ready turns 503
    and infernode_node_schedulable 0, the workers keep running (for maintenance, a
    reboot, `infernode tune bench`). Kept across agent restarts and reboots until
    `infernode uncordon`."""
    import urllib.parse

    from agent.cli_options import EXIT_CONFIG
    from agent.worker.cordon import CordonError, check_reason

    try:
        text = check_reason(reason)
    except CordonError as e:
        click.echo(f"infernode: cordon: {e}", err=True)
        sys.exit(EXIT_CONFIG)
    base = _agent_url(config_path, url)
    data = _call("POST", f"{base}/node/cordon?reason={urllib.parse.quote(text)}", timeout=10)
    click.echo(f"node cordoned: {data.get('reason')}; workers out of rotation, still running")


@click.command("uncordon")
@config_option
@url_option
def uncordon(config_path: Path | None, url: str | None) -> None:
    """Put the node's serving workers back in rotation."""
    data = _call("POST", _agent_url(config_path, url) + "/node/uncordon", timeout=10)
    if data.get("schedulable"):
        click.echo("node uncordoned: serving workers back in rotation")
    else:
        click.echo(f"node uncordoned, still not schedulable: {data.get('reason')}")
