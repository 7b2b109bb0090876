"""`make demo`: infernode explaining slow requests, on any Linux box, without a GPU.

It starts the agent (OTLP receiver and, as root, the eBPF run-queue program), and a
simulated vLLM worker: the vLLM stand-in from the test suite (tests/doubles/
vllm_standin.py, a test double, not vLLM) as a small continuous-batching engine
sending vLLM's llm_request spans. Then a short load in five phases:

  1. requests one at a time      the agent learns the worker's unloaded pace
  2. a burst above the batch     queueing
  3. long prompts during decode  batch interference
  4. one long prompt alone       its own long prompt, nobody else's fault
  5. a CPU hog on its CPU        the kernel's run-queue wait (eBPF: root only)

and prints `infernode slow` and `infernode explain` of the slowest request. Every
process, cgroup and file it made is gone when it ends, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "tests" / "doubles" / "vllm_standin.py"
INFERNODE = str(Path(sys.executable).parent / "infernode")
WORKER = "demo-worker"
MODEL = "demo/simulated-model"
# The engine: a 10 ms step (+0.5 ms per request in the batch, +40 µs per prompt token
# prefilled), 10 ms of host CPU per request and step (what vLLM's scheduler, sampler
# and detokeniser cost), at most 4 requests in the batch.
ENGINE = ["--scheduler", "batched", "--max-num-seqs", "4", "--max-num-batched-tokens", "2048",
          "--step-time", "0.01", "--step-time-per-seq", "0.0005", "--step-time-per-prefill-token", "0.00004",
          "--cpu-per-token", "0.01"]
# What counts as slow here: over 150 ms to the first token, or over 25 ms per output token.
SLO = {"ttft": "150ms", "tpot": "25ms"}


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            sys.exit(f"demo: {url} did not come up (exit {proc.poll()}):\n{tail}")
        time.sleep(0.2)


def ebpf_possible() -> str | None:
    """None when the run-queue program can load here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    try:
        import bcc  # noqa: F401 - python3-bpfcc; only whether it imports
    except ImportError:
        return "bcc (python3-bpfcc) is not installed"
    if not Path("/sys/kernel/tracing/events/sched").is_dir() and not Path("/sys/kernel/debug/tracing/events/sched").is_dir():
        return "tracefs is not mounted (scripts/setup-ebpf-env.sh mounts it)"
    return None


@contextlib.contextmanager
def worker_cgroup() -> Iterator[Path | None]:
    """A cgroup for the worker, so the eBPF programs know its threads: the unified
    hierarchy's root where it has one of its own, else the v1 cpu hierarchy."""
    tag = uuid.uuid4().hex[:6]
    root = Path("/sys/fs/cgroup")
    base = root if (root / "cgroup.controllers").exists() else root / "cpu"
    if not (base / "cgroup.procs").exists():
        yield None
        return
    d = base / f"infernode-demo-{tag}"
    d.mkdir()
    try:
        yield d
    finally:
        for _ in range(50):  # killed tasks leave their cgroup asynchronously
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def post(port: int, prompt_tokens: int, max_tokens: int, stream: bool = False) -> str:
    """One completion; its trace id."""
    trace_id = uuid.uuid4().hex
    body = json.dumps({"model": MODEL, "prompt": " ".join(["w"] * prompt_tokens), "max_tokens": max_tokens,
                       "stream": stream}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body, headers={
        "Content-Type": "application/json", "traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()
    return trace_id


def concurrently(port: int, n: int, prompt_tokens: int, max_tokens: int) -> None:
    threads = [threading.Thread(target=post, args=(port, prompt_tokens, max_tokens)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def load(port: int, cpu: int) -> None:
    say("1/5 twelve requests one at a time: the agent learns the worker's unloaded pace")
    for _ in range(12):
        post(port, 10, 20)
    time.sleep(1.5)

    say("2/5 a burst of 16 requests at a worker that batches 4: the later ones queue")
    concurrently(port, 16, 10, 20)

    say("3/5 long prompts (6,000 tokens) arriving while short requests decode")
    stop = threading.Event()

    def long_prompts() -> None:
        while not stop.is_set():
            post(port, 6000, 2)

    for _ in range(2):
        stop.clear()
        t = threading.Thread(target=long_prompts)
        t.start()
        time.sleep(0.05)
        post(port, 10, 40)
        stop.set()
        t.join()

    say("4/5 one request with a long prompt of its own, alone on the worker")
    post(port, 6000, 5)

    say(f"5/5 a CPU hog on the worker's CPU {cpu} while it serves one request at a time")
    # Outside the worker's cgroup: another tenant of the node.
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                           preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    try:
        time.sleep(0.3)
        for _ in range(6):
            post(port, 10, 20, stream=True)
    finally:
        hog.kill()
        hog.wait()


def main() -> int:
    if not STANDIN.exists():
        sys.exit(f"demo: {STANDIN} is missing (run from a checkout of infernode)")
    why_no_ebpf = ebpf_possible()
    cpu = max(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="infernode-demo-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        cgroup = stack.enter_context(worker_cgroup()) if why_no_ebpf is None else None
        http_port, grpc_port, agent_port, worker_port = free_port(), free_port(), free_port(), free_port()
        from agent.plugins import COLLECTORS

        collectors: dict[str, dict[str, object]] = {cls.name: {"enabled": False} for cls in COLLECTORS}
        if cgroup is not None:
            collectors["ebpf"] = {"enabled": True, "inference_cgroups": [str(cgroup)], "scope_refresh": "1s"}
        config = {
            "server": {"listen": f"127.0.0.1:{agent_port}"},
            "otlp": {"http_listen": f"127.0.0.1:{http_port}", "grpc_listen": f"127.0.0.1:{grpc_port}"},
            "collectors": collectors,
            # Settle after 1 s: the worker's spans arrive within its 500 ms batch delay.
            "explain": {"slo": SLO, "engine": {"settle": "1s", "baseline_min_samples": 10}},
        }
        # Tuning audits the host against a profile: this one has no keys, so a development
        # box's untuned sysctls do not crowd the explanation as drift.
        (work / "profiles").mkdir()
        (work / "profiles" / "demo.yaml").write_text("description: the demo audits nothing\ntunables: {}\n")
        config["tuning"] = {"profile": "demo", "profile_dirs": [str(work / "profiles")]}
        cfg = work / "infernode.yaml"
        cfg.write_text(yaml.safe_dump(config))

        say(f"starting the agent (config {cfg})")
        agent_log = work / "agent.log"
        agent = subprocess.Popen([INFERNODE, "run", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                                 stderr=agent_log.open("wb"), start_new_session=True)
        stack.callback(_stop, agent)
        wait_http(f"http://127.0.0.1:{agent_port}/readyz", 60, agent, agent_log)
        if why_no_ebpf is not None:
            print(f"    eBPF is off ({why_no_ebpf}): the CPU hog's run-queue wait cannot be measured, "
                  "so phase 5 shows what the agent says without kernel evidence")

        from agent.worker.dropin import BSP_ENV

        say(f"starting a simulated vLLM worker on CPU {cpu}: the vLLM stand-in (a test double), "
            "a continuous-batching engine of 4 slots")
        env = {**os.environ, **BSP_ENV, "OTEL_SERVICE_NAME": WORKER,
               "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
        argv = [sys.executable, str(STANDIN), "serve", MODEL, "--host", "127.0.0.1", "--port", str(worker_port),
                "--otlp-traces-endpoint", f"http://127.0.0.1:{http_port}/v1/traces", *ENGINE]
        if cgroup is not None:  # born in the cgroup, so that every thread it makes is there too
            argv = ["sh", "-c", f'echo $$ > {cgroup / "cgroup.procs"} && exec "$@"', "sh", *argv]
        worker_log = work / "worker.log"
        worker = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=worker_log.open("wb"),
                                  preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
                                  start_new_session=True)
        stack.callback(_stop, worker)
        wait_http(f"http://127.0.0.1:{worker_port}/health", 30, worker, worker_log)
        time.sleep(1.5)  # one eBPF scope refresh: the worker's threads are known

        load(worker_port, cpu)
        time.sleep(2.0)  # the last spans in, past the settle time

        url = f"http://127.0.0.1:{agent_port}"
        say("infernode slow")
        cli = ["--config", str(cfg), "--url", url]
        subprocess.run([INFERNODE, "slow", *cli, "--since", "5m", "--top", "30"], check=False)
        out = subprocess.run([INFERNODE, "slow", *cli, "--since", "5m", "--top", "1", "--json"],
                             capture_output=True, text=True, check=False)
        requests = json.loads(out.stdout).get("slow", []) if out.returncode == 0 else []
        if requests:
            trace = requests[0]["trace_id"]
            say(f"infernode explain {trace}   (the slowest)")
            subprocess.run([INFERNODE, "explain", *cli, trace], check=False)
        else:
            print("no slow request was recorded: see the agent's log above", out.stderr)
        say("stopping the agent and the worker")
    return 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    if shutil.which("sh") is None:
        sys.exit("demo: needs sh")
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
