#!/usr/bin/env python3
"""vLLM stand-in: a TEST DOUBLE that speaks vLLM's OpenAI-compatible server API.

It is not vLLM and serves no model: "tokens" are the words "tok0 tok1 ...", paced by
--ttft and --itl. What it mirrors exactly (vLLM 0.33, see /work/shared/REFERENCE.md
and vllm-project/vllm: vllm/entrypoints/openai/api_server.py, vllm/v1/metrics/loggers.py,
vllm/tracing/otel.py) is everything the agent and its tests look at:

  GET  /health, /ping      200 (empty body); 503 once the engine is dead. Never 503
                           while draining (vLLM behaves the same).
  GET  /v1/models          the served model.
  GET  /version            {"version": "0.33.0"} (--report-version changes it).
  POST /v1/completions, /v1/chat/completions
                           JSON, or SSE when "stream": true: `data: <json>\\n\\n` events,
                           `data: [DONE]\\n\\n` last; chunk objects "text_completion" /
                           "chat.completion.chunk" (first chat delta carries the role);
                           stream_options.include_usage adds a final chunk with
                           "choices": [] and "usage". While draining, HTTP keeps accepting
                           and new requests come back 200 with finish_reason "abort" and
                           no text (EngineCore's _reject_add_in_shutdown).
  GET  /metrics            Prometheus text: vllm:* names, labels model_name and engine,
                           vLLM's default bucket bounds, counters with _total and _created;
                           http_requests_total and http_request_duration_seconds of the
                           HTTP server (these stay with --disable-log-stats).
  OTLP                     with --otlp-traces-endpoint URL: start-up spans (one per phase,
                           then "Overall Loading"), then one `llm_request` SERVER span per
                           finished or engine-aborted request (none for a client that
                           disconnects), start = arrival, vLLM's gen_ai.* attributes,
                           resource attribute vllm.process_id (a string), incoming W3C
                           traceparent as parent, BatchSpanProcessor with the SDK's
                           defaults unless OTEL_BSP_* say otherwise. Protocol from
                           OTEL_EXPORTER_OTLP_TRACES_PROTOCOL (grpc default, http/protobuf).
                           An aborted request never scheduled reports prefill and
                           inference of about the host's uptime and 0 tokens, as vLLM does.
  SIGTERM                  --shutdown-timeout 0 (vLLM's default): in-flight requests end
                           with finish_reason "abort" (and a span), then exit; N > 0:
                           drain up to N s (new requests aborted as above), then requests
                           still running fail as engine-dead (500 / error event), exit.
  --disable-log-stats with tracing on: the first finished request kills the engine
                           (vLLM 0.33 asserts in its span path, vllm#25352): that request
                           fails, /health 503, exit 5 s later.

Command line (vLLM's own flag names where vLLM has them):

  vllm_standin.py [serve] [MODEL] [--model MODEL] [--served-model-name NAME]
      [--host 127.0.0.1] [--port 8000] [--shutdown-timeout 0 (an int, as in vLLM)]
      [--otlp-traces-endpoint URL] [--max-model-len 2048] [--max-num-seqs 256]
      [--disable-log-stats]                (vllm:* engine metrics not recorded)
      [--ttft 0.05] [--itl 0.01]           test controls: seconds to first token, between tokens
      [--cpu-per-token 0]                  test control: CPU seconds burnt per token (vLLM's host-side
                                           decode loop, scheduler and detokeniser are CPU-hungry)
      [--read-file PATH --read-bytes 0 [--read-block 65536]]
                                           test control: each request reads this many bytes of PATH
                                           with O_DIRECT during prefill, in blocks, moving on through
                                           the file (what a real engine reads per request: weights
                                           paged back in after eviction, a LoRA adapter, offloaded KV)
      [--startup-delay 0]                  test control: "model load" before the port opens
      [--startup-phase NAME=SECONDS ...]   test control: the load's phases instead (each a span)
      [--report-version 0.33.0]            test control: what GET /version says
      [--fault none|health_hang|engine_hang|engine_dead]   test control, initial fault
      [--scheduler paced|batched]          test control: how requests share the engine (below)
      [--truth-log PATH]                   test control: one JSON line per finished request, what the
                                           double knows and vLLM's span does not say (request id,
                                           preemptions), so a test can check the agent against it
  Other vLLM flags (e.g. --tensor-parallel-size) are accepted and ignored.

Schedulers (test control --scheduler):
  paced     each request is paced on its own by --ttft and --itl, whatever else runs:
            no batch effects at all, unlike vLLM. The kernel-side tests use it, so a
            request's latency moves only with the fault they inject.
  batched   a small continuous-batching engine, after vLLM's v1 scheduler
            (vllm/v1/core/sched/scheduler.py): one step loop; each step first
            schedules the running requests (a decode token each, or the rest of a
            prefill), then admits waiting ones in arrival order while fewer than
            --max-num-seqs run, within a token budget of --max-num-batched-tokens
            (a longer prefill is chunked over steps). A running request that needs a
            KV block when none is free preempts the most recently admitted running
            request (FCFS: `self.running.pop()`), which frees its blocks, goes back to
            the front of the queue and is recomputed from scratch when admitted again;
            vllm:num_preemptions counts it. While a step preempts, no waiting request
            is admitted. KV: --num-gpu-blocks-override blocks of --block-size tokens
            (vLLM's flags). A step takes --step-time + --step-time-per-seq x batch
            size + --step-time-per-prefill-token x prefill tokens in it (vLLM's step
            time is the GPU's, which this linear model only stands in for). The span's
            phases follow vLLM's stats (v1/metrics/stats.py update_from_events): queue
            from QUEUED to the first SCHEDULED, prefill to the first token, decode to
            the last; a preemption's wait and recompute stay inside prefill or decode
            ("ignore preemptions": the first SCHEDULED is kept). What vLLM's default
            --max-num-batched-tokens is on a given GPU, and how vLLM splits
            vllm:num_requests_waiting_by_reason, were not pinned down: the double's
            budget defaults to 2048 and it exports no waiting_by_reason.

Faults at run time (e.g. `systemctl kill -s SIGUSR1 --kill-who=main UNIT`), test controls:
  SIGUSR1   /health and /ping hang (a wedged HTTP server).
  SIGUSR2   the engine hangs: generation stalls, /health still answers 200 (vllm#39863).
  SIGHUP    the engine dies: /health 503, generation 500, the process exits 5 s later
            unless VLLM_KEEP_ALIVE_ON_ENGINE_DEATH=1 (as vLLM's API server does).
  The environment variable VLLM_STANDIN_FAULT sets the initial fault like --fault.

Runs on the standard library alone (it runs inside the test containers with the
system python3); OpenTelemetry is imported only when --otlp-traces-endpoint is given.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import queue
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Default bucket bounds, vllm/v1/metrics/loggers.py.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
               20.0, 40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                           60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION_TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")


def build_1_2_5_buckets(max_value: int) -> tuple[int, ...]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... up to max_value."""
    out: list[int] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            v = m * 10**exponent
            if v > max_value:
                return tuple(out)
            out.append(v)
        exponent += 1


class Histogram:
    def __init__(self, bounds) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, v: float) -> None:
        self.sum += v
        for i, b in enumerate(self.bounds):
            if v <= b:
                self.counts[i] += 1
                return
        self.counts[-1] += 1


def _fmt(v: float) -> str:
    """prometheus_client's float formatting (floatToGoString)."""
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if math.isnan(v):
        return "NaN"
    s = repr(float(v))
    mantissa, _, exp = s.partition("e")
    if exp:
        # 1e+22 style, as Go writes it
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-")
        return f"{mantissa}e{sign}{digits.zfill(2)}"
    return s


class Metrics:
    HISTOGRAMS = {
        "vllm:time_to_first_token_seconds": ("Histogram of time to first token in seconds.", TTFT_BUCKETS),
        "vllm:inter_token_latency_seconds": ("Histogram of inter-token latency in seconds.", ITL_BUCKETS),
        "vllm:request_time_per_output_token_seconds": ("Histogram of time_per_output_token_seconds per request.",
                                                        ITL_BUCKETS),
        "vllm:e2e_request_latency_seconds": ("Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS),
        "vllm:request_queue_time_seconds": ("Histogram of time spent in WAITING phase for request.",
                                            REQUEST_LATENCY_BUCKETS),
        "vllm:request_inference_time_seconds": ("Histogram of time spent in RUNNING phase for request.",
                                                REQUEST_LATENCY_BUCKETS),
        "vllm:request_prefill_time_seconds": ("Histogram of time spent in PREFILL phase for request.",
                                              REQUEST_LATENCY_BUCKETS),
        "vllm:request_decode_time_seconds": ("Histogram of time spent in DECODE phase for request.",
                                             REQUEST_LATENCY_BUCKETS),
        "vllm:iteration_tokens_total": ("Histogram of number of tokens per engine_step.", ITERATION_TOKEN_BUCKETS),
    }

    def __init__(self, model: str, max_model_len: int) -> None:
        self.model = model
        self.lock = threading.Lock()
        self.created = time.time()
        token_buckets = build_1_2_5_buckets(max_model_len)
        self.hist = {name: Histogram(b) for name, (_, b) in self.HISTOGRAMS.items()}
        self.hist["vllm:request_prompt_tokens"] = Histogram(token_buckets)
        self.hist["vllm:request_generation_tokens"] = Histogram(token_buckets)
        self.help = {name: h for name, (h, _) in self.HISTOGRAMS.items()}
        self.help["vllm:request_prompt_tokens"] = "Number of prefill tokens processed."
        self.help["vllm:request_generation_tokens"] = "Number of generation tokens processed."
        self.running = 0
        self.waiting = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.preemptions = 0
        self.success = {r: 0 for r in FINISH_REASONS}
        self.kv_usage = 0.0

    def render(self) -> str:
        base = f'engine="0",model_name="{self.model}"'
        out: list[str] = []

        def gauge(name: str, help_text: str, value: float, labels: str = base) -> None:
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n{name}{{{labels}}} {_fmt(value)}\n")

        def counter(name: str, help_text: str, series: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name}_total {help_text}\n# TYPE {name}_total counter\n")
            for labels, v in series:
                out.append(f"{name}_total{{{labels}}} {_fmt(v)}\n")
            out.append(f"# HELP {name}_created {help_text}\n# TYPE {name}_created gauge\n")
            for labels, _ in series:
                out.append(f"{name}_created{{{labels}}} {_fmt(self.created)}\n")

        with self.lock:
            gauge("vllm:num_requests_running", "Number of requests in model execution batches.", self.running)
            gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", self.waiting)
            gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", self.kv_usage)
            counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
                    [(base, self.preemptions)])
            counter("vllm:prompt_tokens", "Number of prefill tokens processed.", [(base, self.prompt_tokens)])
            counter("vllm:generation_tokens", "Number of generation tokens processed.",
                    [(base, self.generation_tokens)])
            counter("vllm:request_success", "Count of successfully processed requests.",
                    [(f'engine="0",finished_reason="{r}",model_name="{self.model}"', self.success[r])
                     for r in FINISH_REASONS])
            for name in sorted(self.hist):
                h = self.hist[name]
                out.append(f"# HELP {name} {self.help[name]}\n# TYPE {name} histogram\n")
                cum = 0
                for b, c in zip((*h.bounds, math.inf), h.counts, strict=False):
                    cum += c
                    out.append(f'{name}_bucket{{{base},le="{_fmt(b)}"}} {_fmt(cum)}\n')
                out.append(f"{name}_count{{{base}}} {_fmt(cum)}\n{name}_sum{{{base}}} {_fmt(h.sum)}\n")
                out.append(f"# HELP {name}_created {self.help[name]}\n# TYPE {name}_created gauge\n"
                           f"{name}_created{{{base}}} {_fmt(self.created)}\n")
        return "".join(out)


# vLLM's start-up spans, in the order the double emits them (what vLLM's own order
# and nesting are was not pinned down by the reference; the names are vLLM's).
STARTUP_PHASES = ("Load weights", "Compile graph", "Capture model", "Allocate KV cache", "Warmup (GPU)")
# The version /version reports; the release the reference read.
VLLM_VERSION = "0.33.0"


class Tracer:
    """vLLM's spans through the OpenTelemetry SDK (imported lazily), set up as
    vllm/tracing/otel.py does: resource vllm.process_id = str(pid), tracer
    "vllm.tracing.otel", and BatchSpanProcessor(exporter) with the SDK's defaults
    (5 s delay, 2048-span queue, batches of 512, drops past the queue), which the
    OTEL_BSP_* environment variables override."""

    def __init__(self, endpoint: str) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        elif protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[no-redef]
        else:
            raise SystemExit(f"Unsupported OTLP protocol '{protocol}' is configured")
        resource = Resource.create({"vllm.process_id": str(os.getpid()),
                                    "vllm.instrumenting_module_name": "vllm.tracing.otel"})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("vllm.tracing.otel")
        self.propagator = TraceContextTextMapPropagator()

    def emit(self, headers: dict[str, str], start_ns: int, end_ns: int, attrs: dict) -> None:
        from opentelemetry.trace import SpanKind

        ctx = self.propagator.extract({k.lower(): v for k, v in headers.items()})
        span = self.tracer.start_span("llm_request", context=ctx, kind=SpanKind.SERVER, start_time=start_ns)
        span.set_attributes(attrs)
        span.end(end_time=end_ns)

    def phase(self, name: str, start_ns: int, end_ns: int) -> None:
        span = self.tracer.start_span(name, start_time=start_ns)
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        self.provider.shutdown()


class Aborted(Exception):
    """The engine aborted the request (shutdown with timeout 0): vLLM sends abort
    outputs, so the client gets finish_reason "abort", and a span is emitted."""

    def __init__(self, scheduled: bool, tokens: int) -> None:
        super().__init__("aborted")
        self.scheduled = scheduled
        self.tokens = tokens


class EngineDead(Exception):
    """The engine is dead (EngineDeadError): 500, or an error event in a stream; no span."""


class DirectReader:
    """Reads a file with O_DIRECT (the page cache never answers, the device does),
    one aligned block at a time, continuing where the last request stopped."""

    def __init__(self, path: str, block: int) -> None:
        import mmap

        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        self.size = os.fstat(self.fd).st_size // block * block
        if self.size == 0:
            raise SystemExit(f"--read-file {path}: smaller than one --read-block of {block} bytes")
        self.block = block
        self.buf = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT requires
        self.offset = 0
        self.lock = threading.Lock()

    def read(self, nbytes: int) -> None:
        for _ in range(max(1, nbytes // self.block)):
            with self.lock:
                off = self.offset
                self.offset = (off + self.block) % self.size
            os.preadv(self.fd, [self.buf], off)


class HttpMetrics:
    """vLLM's HTTP server metrics: prometheus-fastapi-instrumentator's defaults
    (metrics.default): http_requests_total{handler,method,status} with status grouped
    ("2xx"), http_request_duration_seconds{handler,method} with buckets 0.1, 0.5, 1.
    Which handlers vLLM 0.33 excludes is not pinned down; the double excludes
    /metrics and the probes (/health, /ping, /version). Its summaries and the
    unlabelled high-resolution histogram are left out."""

    EXCLUDED = ("/metrics", "/health", "/ping", "/version")
    BUCKETS = (0.1, 0.5, 1.0)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total: dict[tuple[str, str, str], int] = {}
        self.duration: dict[tuple[str, str], Histogram] = {}

    def observe(self, handler: str, method: str, status: int, seconds: float) -> None:
        if handler in self.EXCLUDED:
            return
        with self.lock:
            key = (handler, method, f"{status // 100}xx")
            self.total[key] = self.total.get(key, 0) + 1
            self.duration.setdefault((handler, method), Histogram(self.BUCKETS)).observe(seconds)

    def render(self) -> str:
        out = ["# HELP http_requests_total Total number of requests by method, status and handler.\n"
               "# TYPE http_requests_total counter\n"]
        with self.lock:
            for (handler, method, status), n in sorted(self.total.items()):
                out.append(f'http_requests_total{{handler="{handler}",method="{method}",status="{status}"}} '
                           f"{_fmt(n)}\n")
            out.append("# HELP http_request_duration_seconds Latency with only few buckets by handler. "
                       "Made to be only used if aggregation by handler is important.\n"
                       "# TYPE http_request_duration_seconds histogram\n")
            for (handler, method), h in sorted(self.duration.items()):
                base = f'handler="{handler}",method="{method}"'
                cum = 0
                for b, c in zip((*h.bounds, math.inf), h.counts, strict=False):
                    cum += c
                    out.append(f'http_request_duration_seconds_bucket{{{base},le="{_fmt(b)}"}} {_fmt(cum)}\n')
                out.append(f"http_request_duration_seconds_count{{{base}}} {_fmt(cum)}\n"
                           f"http_request_duration_seconds_sum{{{base}}} {_fmt(h.sum)}\n")
        return "".join(out)


class Seq:
    """One request inside the batched engine."""

    __slots__ = ("n_prompt", "max_tokens", "arrival", "queued", "scheduled", "first", "last", "generated",
                 "computed", "blocks", "tokens", "preemptions", "finished")

    def __init__(self, n_prompt: int, max_tokens: int, arrival: float) -> None:
        self.n_prompt = n_prompt
        self.max_tokens = max_tokens
        self.arrival = arrival
        self.queued = arrival
        self.scheduled: float | None = None
        self.first: float | None = None
        self.last: float | None = None
        self.generated = 0
        self.computed = 0  # tokens whose KV is computed (0 again after a preemption)
        self.blocks = 0
        self.tokens: queue.SimpleQueue = queue.SimpleQueue()  # token index per output, None when done
        self.preemptions = 0
        self.finished = False


class StepLoop:
    """The batched scheduler (see the module's docstring): one thread steps every
    request in the batch together."""

    def __init__(self, engine: Engine) -> None:
        a = engine.args
        self.engine = engine
        self.max_num_seqs = a.max_num_seqs
        self.budget = a.max_num_batched_tokens
        self.block_size = a.block_size
        self.total_blocks = a.num_gpu_blocks_override
        self.free_blocks = self.total_blocks
        self.waiting: collections.deque[Seq] = collections.deque()
        self.running: list[Seq] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._loop, name="EngineCore", daemon=True).start()

    def submit(self, seq: Seq) -> None:
        with self.cond:
            seq.queued = time.monotonic()
            self.waiting.append(seq)
            self._gauges()
            self.cond.notify()

    def abort(self, seq: Seq) -> None:
        with self.cond:
            if seq in self.running:
                self.running.remove(seq)
            elif seq in self.waiting:
                self.waiting.remove(seq)
            self._free(seq)
            self._gauges()

    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def _free(self, seq: Seq) -> None:
        self.free_blocks += seq.blocks
        seq.blocks = 0

    def _preempt(self, seq: Seq) -> None:
        self._free(seq)
        seq.computed = 0
        seq.preemptions += 1
        self.waiting.appendleft(seq)
        m = self.engine.metrics
        if not self.engine.args.disable_log_stats:
            with m.lock:
                m.preemptions += 1

    def _gauges(self) -> None:
        m = self.engine.metrics
        with m.lock:
            m.running = len(self.running)
            m.waiting = len(self.waiting)
            m.kv_usage = 1.0 - self.free_blocks / self.total_blocks

    def _schedule(self, now: float) -> tuple[list[tuple[Seq, int]], int]:
        """One step's batch, [(request, tokens to compute)], and its prefill tokens."""
        budget = self.budget
        batch: list[tuple[Seq, int]] = []
        preempted = False
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            n = min(seq.n_prompt + seq.generated - seq.computed, budget)
            need = self._blocks_for(seq.computed + n) - seq.blocks
            while need > self.free_blocks:
                victim = self.running.pop()
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            if seq not in self.running:
                break
            self.free_blocks -= need
            seq.blocks += need
            batch.append((seq, n))
            budget -= n
            i += 1
        while not preempted and self.waiting and len(self.running) < self.max_num_seqs and budget > 0:
            seq = self.waiting[0]
            n = min(seq.n_prompt + seq.generated - seq.computed, budget)
            need = self._blocks_for(n)
            if need > self.free_blocks:
                break
            self.waiting.popleft()
            self.running.append(seq)
            self.free_blocks -= need
            seq.blocks += need
            if seq.scheduled is None:
                seq.scheduled = now
            batch.append((seq, n))
            budget -= n
        prefill = sum(n for _, n in batch if n > 1)  # a decode computes one token
        return batch, prefill

    def _loop(self) -> None:
        e = self.engine
        a = e.args
        while not e.stop_event.is_set():
            with self.cond:
                if not self.waiting and not self.running:
                    self.cond.wait(0.05)
                    continue
                batch, prefill = self._schedule(time.monotonic())
                self._gauges()
            if e.fault == "engine_hang":
                time.sleep(0.05)
                continue
            time.sleep(a.step_time + a.step_time_per_seq * len(batch) + a.step_time_per_prefill_token * prefill)
            e._burn(a.cpu_per_token * len(batch))
            now = time.monotonic()
            with self.cond:
                e._record("vllm:iteration_tokens_total", sum(n for _, n in batch))
                for seq, n in batch:
                    if seq.finished or seq not in self.running:
                        continue  # aborted during the step
                    seq.computed += n
                    if seq.computed < seq.n_prompt + seq.generated:
                        continue  # a chunk of a longer prefill
                    if seq.first is None:
                        seq.first = now
                        e._record("vllm:time_to_first_token_seconds", now - seq.arrival)
                    else:
                        e._record("vllm:inter_token_latency_seconds", now - (seq.last or now))
                    seq.last = now
                    seq.tokens.put(seq.generated)
                    seq.generated += 1
                    if seq.generated >= seq.max_tokens:
                        seq.finished = True
                        self.running.remove(seq)
                        self._free(seq)
                        seq.tokens.put(None)
                self._gauges()


class Engine:
    def __init__(self, args: argparse.Namespace, tracer: Tracer | None) -> None:
        self.args = args
        self.model = args.served_model_name or args.model
        self.metrics = Metrics(self.model, args.max_model_len)
        self.http = HttpMetrics()
        self.slots = threading.Semaphore(args.max_num_seqs)
        self.fault = args.fault
        self.draining = False
        self.aborting = False
        self.inflight = 0
        self.cond = threading.Condition()
        self.tracer = tracer
        self.stop_event = threading.Event()
        self.reader = DirectReader(args.read_file, args.read_block) if args.read_file and args.read_bytes else None
        self.on_death = lambda: None  # main() arms the watchdog
        self.steps = StepLoop(self) if args.scheduler == "batched" else None
        self.truth = open(args.truth_log, "a") if args.truth_log else None  # noqa: SIM115 - for the process's life
        self.truth_lock = threading.Lock()

    def die(self) -> None:
        """The engine died: /health 503, generation 500, exit 5 s later (watchdog)."""
        if self.fault != "engine_dead":
            self.fault = "engine_dead"
            self.on_death()

    def generate(self, n_prompt: int, max_tokens: int, timings: dict[str, float]):
        """Yields (index, text); fills `timings` (seconds) when done. Raises Aborted
        when shutdown aborts the request, EngineDead when the engine is dead."""
        if self.steps is not None:
            yield from self._generate_batched(n_prompt, max_tokens, timings)
            return
        arrival = time.monotonic()
        m = self.metrics
        with m.lock:
            m.waiting += 1
        try:
            while not self.slots.acquire(timeout=0.05):
                self._check()
        except Aborted:
            with m.lock:
                m.waiting -= 1
            raise
        scheduled = time.monotonic()
        with m.lock:
            m.waiting -= 1
            m.running += 1
        produced = 0
        try:
            try:
                if self.reader is not None:
                    self.reader.read(self.args.read_bytes)
                self._sleep(self.args.ttft)
                first = time.monotonic()
                last = first
                for i in range(max_tokens):
                    if i:
                        self._sleep(self.args.itl)
                    self._burn(self.args.cpu_per_token)
                    if i:
                        now = time.monotonic()
                        self._record("vllm:inter_token_latency_seconds", now - last)
                        last = now
                    else:
                        self._record("vllm:time_to_first_token_seconds", first - arrival)
                    self._record("vllm:iteration_tokens_total", n_prompt if i == 0 else 1)
                    produced = i + 1
                    yield i, f"tok{i} "
            except Aborted:
                raise Aborted(True, produced) from None
            done = time.monotonic()
            timings.update({
                "queue": scheduled - arrival, "ttft": first - arrival, "e2e": done - arrival,
                "prefill": first - scheduled, "decode": done - first, "inference": done - scheduled,
            })
            self._finish(n_prompt, max_tokens, timings)
        finally:
            with m.lock:
                m.running -= 1
            self.slots.release()

    def _generate_batched(self, n_prompt: int, max_tokens: int, timings: dict[str, float]):
        assert self.steps is not None
        seq = Seq(n_prompt, max_tokens, time.monotonic())
        self._check()
        self.steps.submit(seq)
        produced = 0
        try:
            while True:
                try:
                    tok = seq.tokens.get(timeout=0.05)
                except queue.Empty:
                    try:
                        self._check()
                    except Aborted:
                        raise Aborted(seq.scheduled is not None, produced) from None
                    continue
                if tok is None:
                    break
                produced += 1
                yield tok, f"tok{tok} "
        finally:
            if not seq.finished:
                self.steps.abort(seq)  # aborted, engine dead, or the client went away
        assert seq.scheduled is not None and seq.first is not None and seq.last is not None
        done = time.monotonic()
        timings.update({
            "queue": seq.scheduled - seq.queued, "ttft": seq.first - seq.arrival, "e2e": done - seq.arrival,
            "prefill": seq.first - seq.scheduled, "decode": seq.last - seq.first, "inference": seq.last - seq.scheduled,
        })
        timings["preemptions"] = seq.preemptions
        self._finish(n_prompt, max_tokens, timings)

    @staticmethod
    def _burn(cpu_seconds: float) -> None:
        """A fixed amount of CPU work, however long it takes to get it: on a contended
        CPU the wall time grows by the run-queue waits."""
        if cpu_seconds <= 0:
            return
        end = time.thread_time() + cpu_seconds
        while time.thread_time() < end:
            pass

    def _check(self) -> None:
        if self.fault == "engine_dead":
            raise EngineDead()
        if self.aborting:
            raise Aborted(False, 0)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._check()
            remaining = deadline - time.monotonic()
            if self.fault != "engine_hang" and remaining <= 0:
                return
            time.sleep(min(0.05, max(remaining, 0.01)))

    def _record(self, name: str, value: float) -> None:
        if self.args.disable_log_stats:
            return
        with self.metrics.lock:
            self.metrics.hist[name].observe(value)

    def _finish(self, n_prompt: int, n_gen: int, t: dict[str, float]) -> None:
        if self.args.disable_log_stats:
            if self.tracer is not None:
                # vLLM 0.33 output_processor.py do_tracing: `assert req_state.stats is not
                # None`; without stats the assertion ends the output handler, the engine
                # is dead and this request never gets its final output (vllm#25352).
                self.die()
                raise EngineDead()
            return
        m = self.metrics
        with m.lock:
            m.prompt_tokens += n_prompt
            m.generation_tokens += n_gen
            m.success["length"] += 1
            for key, name in (("e2e", "vllm:e2e_request_latency_seconds"), ("queue", "vllm:request_queue_time_seconds"),
                              ("inference", "vllm:request_inference_time_seconds"),
                              ("prefill", "vllm:request_prefill_time_seconds"),
                              ("decode", "vllm:request_decode_time_seconds")):
                m.hist[name].observe(t[key])
            if n_gen > 1:
                m.hist["vllm:request_time_per_output_token_seconds"].observe(t["decode"] / (n_gen - 1))
            m.hist["vllm:request_prompt_tokens"].observe(n_prompt)
            m.hist["vllm:request_generation_tokens"].observe(n_gen)

    def count_abort(self) -> None:
        if not self.args.disable_log_stats:
            with self.metrics.lock:
                self.metrics.success["abort"] += 1

    def aborted_timings(self, arrival_wall: float, scheduled: bool, tokens: int) -> dict[str, float]:
        """What vLLM's output processor makes of an abort output. A request never
        scheduled has queued/scheduled timestamps of 0, so prefill and inference are
        EngineCore's time.monotonic() (about the host's uptime) and decode 0
        (reference 2.4). For one aborted while running the double reports its real
        phases so far; what vLLM reports then was not pinned down."""
        e2e = max(time.time() - arrival_wall, 0.0)
        if not scheduled:
            mono = time.monotonic()
            return {"queue": 0.0, "ttft": e2e, "e2e": e2e, "prefill": mono, "decode": 0.0, "inference": mono}
        return {"queue": 0.0, "ttft": min(self.args.ttft, e2e), "e2e": e2e,
                "prefill": min(self.args.ttft, e2e), "decode": max(e2e - self.args.ttft, 0.0), "inference": e2e}

    def span(self, headers: dict[str, str], request_id: str, start_ns: int, n_prompt: int, n_gen: int,
             body: dict, t: dict[str, float]) -> None:
        if self.truth is not None:
            line = json.dumps({"request_id": request_id, "prompt_tokens": n_prompt, "completion_tokens": n_gen,
                               "preemptions": int(t.get("preemptions", 0)),
                               **{k: t[k] for k in ("queue", "prefill", "decode", "e2e") if k in t}})
            with self.truth_lock:
                self.truth.write(line + "\n")
                self.truth.flush()
        if self.tracer is None:
            return
        attrs = {
            "gen_ai.request.id": request_id,
            "gen_ai.usage.prompt_tokens": n_prompt,
            "gen_ai.usage.completion_tokens": n_gen,
            "gen_ai.latency.time_in_queue": t["queue"],
            "gen_ai.latency.time_to_first_token": t["ttft"],
            "gen_ai.latency.e2e": t["e2e"],
            "gen_ai.latency.time_in_model_prefill": t["prefill"],
            "gen_ai.latency.time_in_model_decode": t["decode"],
            "gen_ai.latency.time_in_model_inference": t["inference"],
        }
        # vLLM sets these only when the value is truthy (tracing/otel.py).
        for key, attr in (("top_p", "gen_ai.request.top_p"), ("max_tokens", "gen_ai.request.max_tokens"),
                          ("temperature", "gen_ai.request.temperature"), ("n", "gen_ai.request.n")):
            if body.get(key):
                attrs[attr] = body[key]
        self.tracer.emit(headers, start_ns, start_ns + int(t["e2e"] * 1e9), attrs)


def _count_tokens(body: dict, chat: bool) -> int:
    if chat:
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict))
    else:
        prompt = body.get("prompt", "")
        text = " ".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)
    return max(1, len(text.split()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    engine: Engine  # set on the subclass
    # Per request, set by _timed; defaults for a request the server refuses before it
    # reaches a handler (send_error on a malformed request line).
    _t0 = 0.0
    _method = ""
    _status = 0

    def log_message(self, fmt: str, *args: object) -> None:  # quiet; vLLM logs to journald its own way
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        # prometheus-fastapi-instrumentator (vLLM's HTTP metrics) records a request
        # in its middleware when the app hands back the response object: before the
        # client has the body, and for a stream before its first chunk. So it is
        # counted here, when the status goes out; a client that reads a response and
        # then scrapes /metrics sees its request counted.
        if not self._status:
            self.engine.http.observe(self.path.split("?", 1)[0], self._method, code, time.monotonic() - self._t0)
        self._status = code
        super().send_response(code, message)

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: object) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode())

    def _error(self, status: int, message: str, kind: str) -> None:
        self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": status}})

    def _timed(self, method: str, fn) -> None:
        self._t0 = time.monotonic()
        self._method = method
        self._status = 0
        fn()

    def do_GET(self) -> None:  # noqa: N802
        self._timed("GET", self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._timed("POST", self._post)

    def _get(self) -> None:
        e = self.engine
        if self.path in ("/health", "/ping"):
            while e.fault == "health_hang" and not e.stop_event.is_set():
                time.sleep(0.1)
            self._send(503 if e.fault == "engine_dead" else 200, b"", "text/plain")
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{
                "id": e.model, "object": "model", "created": int(e.metrics.created), "owned_by": "vllm",
                "root": e.args.model, "parent": None, "max_model_len": e.args.max_model_len}]})
        elif self.path == "/version":
            self._json(200, {"version": e.args.report_version})
        elif self.path == "/metrics":
            # The route stays with --disable-log-stats; only vllm:* goes (async_llm.py).
            body = e.http.render() + ("" if e.args.disable_log_stats else e.metrics.render())
            self._send(200, body.encode(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._json(404, {"detail": "Not Found"})

    def _post(self) -> None:
        e = self.engine
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/ping":
            self._send(503 if e.fault == "engine_dead" else 200, b"", "text/plain")
            return
        chat = self.path == "/v1/chat/completions"
        if not chat and self.path != "/v1/completions":
            self._json(404, {"detail": "Not Found"})
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("request body must be a JSON object")
        except ValueError as err:
            self._error(400, f"invalid JSON: {err}", "BadRequestError")
            return
        if e.fault == "engine_dead":
            self._error(500, "EngineCore encountered an issue.", "InternalServerError")
            return
        with e.cond:
            e.inflight += 1
        try:
            self._complete(body, chat)
        finally:
            with e.cond:
                e.inflight -= 1
                e.cond.notify_all()

    def _complete(self, body: dict, chat: bool) -> None:
        e = self.engine
        start_ns = time.time_ns()
        arrival_wall = time.time()
        request_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        n_prompt = _count_tokens(body, chat)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        created = int(time.time())
        headers = {k: v for k, v in self.headers.items()}
        usage = lambda n: {"prompt_tokens": n_prompt, "total_tokens": n_prompt + n,  # noqa: E731
                           "completion_tokens": n}
        obj = "chat.completion.chunk" if chat else "text_completion"
        stream = bool(body.get("stream"))
        timings: dict[str, float] = {}
        parts: list[str] = []
        finish, n_gen = "length", max_tokens
        if not stream:
            try:
                if e.draining:
                    # EngineCore's _reject_add_in_shutdown: an abort output, no HTTP error.
                    raise Aborted(False, 0)
                for _, t in e.generate(n_prompt, max_tokens, timings):
                    parts.append(t)
            except Aborted as ab:
                finish, n_gen = "abort", ab.tokens
                timings = e.aborted_timings(arrival_wall, ab.scheduled, ab.tokens)
                e.count_abort()
            except EngineDead:
                self._error(500, "EngineCore encountered an issue. See stack trace (above) for the root cause.",
                            "InternalServerError")
                return
            text = "".join(parts)
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                       "finish_reason": finish, "stop_reason": None} if chat else
                      {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None})
            self._json(200, {"id": request_id, "object": "chat.completion" if chat else "text_completion",
                             "created": created, "model": e.model, "choices": [choice], "usage": usage(n_gen)})
            e.span(headers, request_id, start_ns, n_prompt, n_gen, body, timings)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list, extra: dict | None = None) -> None:
            payload = {"id": request_id, "object": obj, "created": created, "model": e.model, "choices": choices}
            payload.update(extra or {})
            self._write_event(json.dumps(payload, separators=(",", ":")))

        def token(text: str, reason: str | None) -> None:
            if chat:
                chunk([{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": reason}])
            else:
                chunk([{"index": 0, "text": text, "logprobs": None, "finish_reason": reason, "stop_reason": None}])

        try:
            if chat:
                chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                        "finish_reason": None}])
            try:
                if e.draining:
                    raise Aborted(False, 0)
                for i, text in e.generate(n_prompt, max_tokens, timings):
                    token(text, "length" if i == max_tokens - 1 else None)
            except Aborted as ab:
                # The abort output ends the stream normally: a last chunk with
                # finish_reason "abort" and no text, then [DONE].
                finish, n_gen = "abort", ab.tokens
                timings = e.aborted_timings(arrival_wall, ab.scheduled, ab.tokens)
                e.count_abort()
                token("", "abort")
            except EngineDead:
                # vLLM's streaming generators turn an exception into an error event.
                self._write_event(json.dumps({"error": {
                    "message": "EngineCore encountered an issue. See stack trace (above) for the root cause.",
                    "type": "InternalServerError", "param": None, "code": 500}}, separators=(",", ":")))
                self._write_event("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
            if include_usage:
                chunk([], {"usage": usage(n_gen)})
            self._write_event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # A client that disconnects gets no span (output_processor.py abort_requests).
            self.close_connection = True
            return
        e.span(headers, request_id, start_ns, n_prompt, n_gen, body, timings)

    def _write_event(self, data: str) -> None:
        event = f"data: {data}\n\n".encode()
        self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
        self.wfile.flush()


def _phase(text: str) -> tuple[str, float]:
    name, sep, seconds = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=SECONDS, got {text!r}")
    return name, float(seconds)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vllm_standin", description="vLLM stand-in (test double)")
    p.add_argument("positional", nargs="*", help="[serve] [MODEL]")
    p.add_argument("--model", default=None)
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    # vLLM: type=int (engine/arg_utils.py); "2.5" exits 2 at argument parsing.
    p.add_argument("--shutdown-timeout", type=int, default=0)
    p.add_argument("--otlp-traces-endpoint", default=None)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--disable-log-stats", action="store_true")
    p.add_argument("--ttft", type=float, default=0.05)
    p.add_argument("--itl", type=float, default=0.01)
    p.add_argument("--cpu-per-token", type=float, default=0.0)
    p.add_argument("--startup-delay", type=float, default=0.0)
    p.add_argument("--startup-phase", type=_phase, action="append", default=[])
    p.add_argument("--report-version", default=VLLM_VERSION)
    p.add_argument("--read-file", default=None)
    p.add_argument("--read-bytes", type=int, default=0)
    p.add_argument("--read-block", type=int, default=65536)
    p.add_argument("--scheduler", choices=("paced", "batched"), default="paced")
    p.add_argument("--truth-log", default=None)
    p.add_argument("--max-num-batched-tokens", type=int, default=2048)
    p.add_argument("--num-gpu-blocks-override", type=int, default=1 << 20)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--step-time", type=float, default=None)
    p.add_argument("--step-time-per-seq", type=float, default=0.0002)
    p.add_argument("--step-time-per-prefill-token", type=float, default=0.00002)
    p.add_argument("--fault", choices=("none", "health_hang", "engine_hang", "engine_dead"),
                   default=os.environ.get("VLLM_STANDIN_FAULT", "none"))
    args, _unknown = p.parse_known_args(argv)  # vLLM flags the double does not model
    if args.shutdown_timeout < 0:
        p.error("argument --shutdown-timeout: must be >= 0")
    for flag in ("max_num_seqs", "max_num_batched_tokens", "num_gpu_blocks_override", "block_size"):
        if getattr(args, flag) < 1:
            p.error(f"argument --{flag.replace('_', '-')}: must be >= 1")
    if args.step_time is None:
        args.step_time = args.itl
    pos = [a for a in args.positional if a != "serve"]
    args.model = args.model or (pos[0] if pos else "standin/tiny-model")
    return args


def load(args: argparse.Namespace, tracer: Tracer | None) -> None:
    """Model load: vLLM refuses connections meanwhile. With tracing on it exports a
    span per start-up phase as the phase ends, and "Overall Loading" around them."""
    phases = args.startup_phase or [(name, args.startup_delay / len(STARTUP_PHASES)) for name in STARTUP_PHASES]
    t_all = time.time_ns()
    for name, seconds in phases:
        t0 = time.time_ns()
        time.sleep(seconds)
        if tracer is not None:
            tracer.phase(name, t0, time.time_ns())
    if tracer is not None:
        tracer.phase("Overall Loading", t_all, time.time_ns())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    tracer = Tracer(args.otlp_traces_endpoint) if args.otlp_traces_endpoint else None
    load(args, tracer)
    engine = Engine(args, tracer)
    handler = type("BoundHandler", (Handler,), {"engine": engine})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    done = threading.Event()

    def stop_server() -> None:
        engine.stop_event.set()
        server.shutdown()
        done.set()

    def wait_inflight(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with engine.cond:
            while engine.inflight and time.monotonic() < deadline:
                engine.cond.wait(timeout=0.05)

    def shutdown() -> None:
        """vLLM's SIGTERM (launcher.py, v1/engine/core.py): with a timeout, EngineCore
        keeps stepping until no work is left while new requests get abort outputs;
        at the timeout the API server kills the EngineCore tree, so requests still
        running fail as engine-dead. With 0, in-flight requests get abort outputs."""
        if args.shutdown_timeout > 0:
            engine.draining = True
            wait_inflight(args.shutdown_timeout)
            if engine.inflight:
                engine.fault = "engine_dead"
                wait_inflight(1.0)
        else:
            engine.aborting = True
            wait_inflight(1.0)
        stop_server()

    def on_term(_sig: int, _frm: object) -> None:
        # vLLM logs "[shutdown] API server: shutdown triggered" (launcher.py); the
        # double adds the wall-clock time for tests that order events around it.
        print(f"INFO: [shutdown] API server: shutdown triggered at {time.time():.3f}", flush=True)
        if not engine.draining and not engine.aborting:
            threading.Thread(target=shutdown, daemon=True).start()

    def arm_watchdog() -> None:
        # vLLM's watchdog_loop ends the server within 5 s of the engine's death.
        if os.environ.get("VLLM_KEEP_ALIVE_ON_ENGINE_DEATH") != "1":
            threading.Timer(5.0, stop_server).start()

    engine.on_death = arm_watchdog
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, lambda *_: setattr(engine, "fault", "health_hang"))
    signal.signal(signal.SIGUSR2, lambda *_: setattr(engine, "fault", "engine_hang"))
    signal.signal(signal.SIGHUP, lambda *_: engine.die())
    if engine.fault == "engine_dead":
        arm_watchdog()
    print(f"INFO: vLLM stand-in serving {engine.model} on http://{args.host}:{args.port} "
          f"(pid {os.getpid()}, shutdown-timeout {args.shutdown_timeout}s)", flush=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    done.wait()
    server.server_close()
    if tracer is not None:
        tracer.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
