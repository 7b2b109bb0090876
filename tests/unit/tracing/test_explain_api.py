"""GET /debug/explain and /debug/slow on the agent's port, and the CLI over them."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from agent.cgroups import cgroup_of_pid
from agent.cli import main
from agent.events import Event
from agent.paths import Paths

from .agentloop import AgentLoop
from .sdkspans import emit_llm_request, provider

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def agent():
    cfg = {"explain": {"token": TOKEN, "slo": {"ttft": "300ms"}}}
    with AgentLoop(cfg) as a:
        cg = cgroup_of_pid(Paths(), os.getpid())
        start = time.time_ns() - 3_000_000_000
        a.daemon.events.add(Event(start + 50_000_000, start + 230_000_000, "runqueue_wait", f"cgroup:{cg}", 0.18,
                                  {"tid": 1, "cpu": 3, "holder_pid": 4242, "holder_comm": "kworker"}))
        tp = provider(OTLPSpanExporter(endpoint=a.http_url))
        a.slow_trace = emit_llm_request(tp, start_ns=start, ttft=0.42, queue=0.02, prefill=0.38)
        a.fast_trace = emit_llm_request(tp, ttft=0.05, queue=0.01, prefill=0.03)
        tp.shutdown()
        a.flush()
        yield a


def get(url: str, token: str | None = TOKEN):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_explain_names_the_cause(agent):
    status, body = get(f"{agent.agent_url}/debug/explain?trace_id={agent.slow_trace}")
    assert status == 200
    (r,) = body["requests"]
    assert r["verdict"] == "run-queue wait 180 ms of 420 ms TTFT on CPU 3, CPU held by thread 4242 (kworker)"
    assert r["causes"][0]["share"] == pytest.approx(0.18 / r["latency_seconds"]["e2e"], abs=1e-3)
    assert r["slow"] == [{"phase": "ttft", "seconds": 0.42, "threshold_seconds": 0.3, "basis": "slo"}]
    assert r["events"][0]["kind"] == "runqueue_wait" and r["events"][0]["phase"] == "prefill"


def test_fast_request_has_no_known_cause(agent):
    status, body = get(f"{agent.agent_url}/debug/explain?trace_id={agent.fast_trace}")
    assert status == 200
    assert body["requests"][0]["verdict"] == "no known cause"
    assert body["requests"][0]["slow"] == []


def test_unknown_trace_is_404(agent):
    status, body = get(f"{agent.agent_url}/debug/explain?trace_id={'ab' * 16}")
    assert status == 404 and "not seen" in body["error"]


def test_malformed_trace_id_is_400(agent):
    status, body = get(f"{agent.agent_url}/debug/explain?trace_id=xyz")
    assert status == 400 and "32 hex" in body["error"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_token_required(agent, token):
    status, body = get(f"{agent.agent_url}/debug/explain?trace_id={agent.slow_trace}", token=token)
    assert status == 401


def test_slow_lists_only_slow_requests(agent):
    status, body = get(f"{agent.agent_url}/debug/slow?since=5m&top=10")
    assert status == 200
    assert [r["trace_id"] for r in body["slow"]] == [agent.slow_trace]
    assert body["requests_seen"] == 2
    assert "events" not in body["slow"][0]


def test_slow_rejects_bad_arguments(agent):
    assert get(f"{agent.agent_url}/debug/slow?since=yesterday")[0] == 400
    assert get(f"{agent.agent_url}/debug/slow?top=0")[0] == 400


def test_cli_explain_table(agent):
    res = CliRunner().invoke(main, ["explain", agent.slow_trace, "--url", agent.agent_url, "--token", TOKEN])
    assert res.exit_code == 0, res.output
    assert "verdict  run-queue wait 180 ms of 420 ms TTFT on CPU 3" in res.output
    assert "ttft 420.0 ms > 300.0 ms (slo)" in res.output


def test_cli_explain_json(agent):
    res = CliRunner().invoke(main, ["explain", agent.slow_trace, "--url", agent.agent_url, "--token", TOKEN, "--json"])
    assert res.exit_code == 0
    assert json.loads(res.output)["requests"][0]["causes"][0]["kind"] == "runqueue_wait"


def test_cli_slow_table(agent):
    res = CliRunner().invoke(main, ["slow", "--since", "10m", "--url", agent.agent_url, "--token", TOKEN])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("1 slow of 2 requests seen in the last 600 s")
    assert agent.slow_trace in res.output and "CPU held by thread 4242" in res.output


def test_cli_unknown_trace_exits_1(agent):
    res = CliRunner().invoke(main, ["explain", "cd" * 16, "--url", agent.agent_url, "--token", TOKEN])
    assert res.exit_code == 1 and "not seen" in res.output


def test_cli_unreachable_agent_exits_3():
    res = CliRunner().invoke(main, ["slow", "--url", "http://127.0.0.1:9", "--token", "x"])
    assert res.exit_code == 3 and "cannot reach the agent" in res.output
