"""What the chaos scenarios share: the vLLM stand-in as a worker in a test cgroup,
streamed requests with a known trace id, and the agent's own explanations."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.harness.agent import Agent, only_collectors
from tests.integration.ebpf.conftest import CPU_ROOT, _rm_cgroup, only_programs

STANDIN = str(Path(__file__).parents[2] / "doubles" / "vllm_standin.py")


def standin_env() -> dict[str, str]:
    """A stand-in's environment as a managed worker's drop-in sets it: the batch
    span processor's settings (agent.worker.dropin.BSP_ENV) and OTLP over HTTP."""
    from agent.worker.dropin import BSP_ENV

    return {**os.environ, **BSP_ENV, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}


def agent_config(cgroups: list[Path], programs: tuple[str, ...], http_port: int, grpc_port: int) -> dict:
    """The agent with only the eBPF collector (these programs, these inference cgroups)
    and its OTLP receivers on the given ports."""
    return {
        "collectors": {**only_collectors("ebpf"), "ebpf": {
            "enabled": True,
            "inference_cgroups": [str(c) for c in cgroups],
            "programs": only_programs(*programs),
            "scope_refresh": "1s",
        }},
        "otlp": {"http_listen": f"127.0.0.1:{http_port}", "grpc_listen": f"127.0.0.1:{grpc_port}"},
    }


def post_stream(port: int, trace_id: str, tokens: int) -> float:
    """One streamed completion read to [DONE]; returns its client-side seconds."""
    body = json.dumps({"model": "standin/tiny-model", "prompt": "hello", "max_tokens": tokens,
                       "stream": True}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body, headers={
        "Content-Type": "application/json", "traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"})
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=30) as resp:
        data = resp.read()
    assert b"data: [DONE]" in data
    return time.monotonic() - t0


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


def wait_program(agent: Agent, program: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while f'infernode_ebpf_program_up{{program="{program}"}} 1.0' not in agent.metrics():
        assert time.monotonic() < deadline, f"eBPF program {program} did not load"
        time.sleep(0.2)


def explanation(agent: Agent, trace_id: str, timeout: float = 10.0) -> dict:
    """GET /debug/explain for one trace, waiting for its span to arrive."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = agent.get(f"/debug/explain?trace_id={trace_id}")
        if status == 200:
            (req,) = json.loads(body)["requests"]
            return req
        if time.monotonic() > deadline:
            raise AssertionError(f"trace {trace_id} not explained by the agent: {status} {body[:200]!r}")
        time.sleep(0.1)


def cause_s(req: dict, kind: str, device: str | None = None) -> float:
    """Seconds the agent's explanation puts on causes of one kind (on one device)."""
    return sum(c["explained_seconds"] for c in req["causes"]
               if c["kind"] == kind and (device is None or c["detail"].get("device") == device))


@contextmanager
def cpu_cgroups(*names: str, shares: int) -> Iterator[list[Path]]:
    """Sibling v1 cpu cgroups of the given weight (1024 is everyone else's)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not (CPU_ROOT / "tasks").exists():
        pytest.skip("no v1 cpu cgroup hierarchy here")
    tag = uuid.uuid4().hex[:8]
    made: list[Path] = []
    try:
        for name in names:
            d = CPU_ROOT / f"chaos-{name}-{tag}"
            d.mkdir()
            made.append(d)
            (d / "cpu.shares").write_text(str(shares))
        yield made
    finally:
        for d in made:
            _rm_cgroup(d)


def in_cgroup(cgroup: Path, *argv: str) -> list[str]:
    """argv run in `cgroup` from before exec, so every thread it will have is born there."""
    return ["sh", "-c", f'echo $$ > {cgroup / "tasks"} && exec "$@"', "sh", *argv]
