"""The tracing subsystem: OTLP receivers (HTTP and gRPC), enrichment, request
metrics, the explain endpoints and forwarding, started and stopped with the daemon."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent.doctor_row import DoctorRow
from agent.heap import HeapTrimmer
from agent.http_listener import GuardedListener, ListenerStats
from agent.runtime import SerialDaemonThread
from agent.samples import Sample
from agent.subsystem import Subsystem, SubsystemContext
from agent.tracing.explain_api import add_explain_routes
from agent.tracing.forward import Forwarder
from agent.tracing.metrics import RequestMetrics
from agent.tracing.pipeline import Enricher
from agent.tracing.receiver_grpc import build_grpc_server
from agent.tracing.receiver_http import build_receiver_app
from agent.tracing.recent import RecentRequests
from agent.tracing.scope import ScopeResolver
from agent.tracing.settings import OtlpSettings, TracingConfig
from agent.tracing.specs import (
    OTLP_ENRICH_SECONDS_TOTAL,
    OTLP_FORWARD_DROPPED_SPANS_TOTAL,
    OTLP_FORWARD_QUEUE_SPANS,
    OTLP_FORWARDED_SPANS_TOTAL,
    OTLP_RECEIVED_SPANS_TOTAL,
    OTLP_RECEIVER_UP,
    OTLP_REJECTED_TOTAL,
    OTLP_SPECS,
    REQUEST_SPANS_TOTAL,
    REQUEST_SPECS,
)
from agent.units import parse_listen
from agent.usage import TokenTotals

log = logging.getLogger("infernode.tracing")

# What the tracing subsystem's stop may take, inside the daemon's 4.5 s shutdown
# budget: the receivers' grace for exports in flight (aiohttp waits it twice, for
# the handler and then for its cancellation), then one last flush upstream.
RECEIVER_GRACE_S = 0.5
FORWARD_FLUSH_BUDGET_S = 1.5


class TracingSubsystem(Subsystem[TracingConfig]):
    name = "tracing"
    specs = REQUEST_SPECS + OTLP_SPECS

    def __init__(self, ctx: SubsystemContext[TracingConfig]) -> None:
        super().__init__(ctx)
        cfg = ctx.config
        self.otlp = cfg.otlp
        self.explain_settings = cfg.explain
        self.metrics = RequestMetrics()
        self.recent = RecentRequests(cfg.explain.keep_requests)
        self.resolver = ScopeResolver(ctx.paths, cfg.workers, ctx.services)
        self.enricher = Enricher(ctx.events, cfg.explain, self.resolver, self.metrics, self.recent, ctx.services)
        self.rejected: dict[tuple[str, str], int] = {}
        self.forwarder: Forwarder | None = None
        self._pipeline: SerialDaemonThread | None = None
        self._http_runner: GuardedListener | None = None
        self.http_listener_stats = ListenerStats("otlp_http")
        self.heap = HeapTrimmer()
        self._grpc: grpc.aio.Server | None = None
        self.receiver_errors: dict[str, str] = {}
        self.http_address: tuple[str, int] | None = None
        self.grpc_address: tuple[str, int] | None = None

    @classmethod
    def enabled(cls, config: TracingConfig) -> bool:
        return bool(config.otlp.enabled)

    def _reject(self, transport: str) -> Callable[[str], None]:
        def count(reason: str) -> None:
            key = (transport, reason)
            self.rejected[key] = self.rejected.get(key, 0) + 1
            # A refused payload has just been let go: give its pages back (agent/heap.py).
            self.heap.request()
        return count

    async def _handle(self, req: ExportTraceServiceRequest) -> None:
        assert self._pipeline is not None
        try:
            # One span batch at a time (the pipeline is not reentrant), off the loop.
            await asyncio.wrap_future(self._pipeline.submit(self.enricher.process, req))
        except Exception:  # enrichment must never cost the sender its spans
            log.exception("span enrichment failed; forwarding unenriched")
        if self.forwarder is not None:
            self.forwarder.submit(req)

    async def start(self) -> None:
        self._pipeline = SerialDaemonThread("infernode-otlp")
        if self.otlp.forward.endpoint:
            self.forwarder = Forwarder(self.otlp.forward)
            await self.forwarder.start()
        self.enricher.annotate = self.forwarder is not None
        # For the cost ledger: tokens each worker served.
        self.ctx.services.request_token_totals = self.token_totals
        await self._start_receivers()

    def token_totals(self) -> dict[str, TokenTotals]:
        return self.metrics.token_totals()

    async def _start_receivers(self) -> None:
        # A port taken by another collector costs the node its request telemetry, not
        # its metrics: the agent keeps serving, says so in the log, doctor and
        # infernode_otlp_receiver_up.
        for transport, starter, listen in (("http", self._start_http, self.otlp.http_listen),
                                           ("grpc", self._start_grpc, self.otlp.grpc_listen)):
            try:
                await starter()
                self.receiver_errors.pop(transport, None)
            except OSError as e:
                self.receiver_errors[transport] = f"cannot listen on {listen}: {e.strerror or e}"
                log.error("OTLP/%s receiver not started: %s", transport, self.receiver_errors[transport])
        def where(addr: tuple[str, int] | None) -> str:
            return f"{addr[0] or '*'}:{addr[1]}" if addr else "down"

        log.info("OTLP receivers", extra={"http": where(self.http_address), "grpc": where(self.grpc_address)})

    async def _start_http(self) -> None:
        host, port = parse_listen(self.otlp.http_listen)
        app = build_receiver_app(self._handle, self._reject("http"), self.otlp.max_payload, self.otlp.body_timeout)
        listener = GuardedListener(self.http_listener_stats, self.otlp.connections)
        # The receiver inflates bodies itself, under the payload limit (aiohttp would not bound it).
        # An export still arriving at stop gets RECEIVER_GRACE_S, not aiohttp's 60 s:
        # the agent's whole shutdown has 5 s.
        self.http_address = await listener.serve(app, host, port, auto_decompress=False,
                                                 shutdown_timeout=RECEIVER_GRACE_S)
        self._http_runner = listener

    async def _start_grpc(self) -> None:
        host, port = parse_listen(self.otlp.grpc_listen)
        server = build_grpc_server(self._handle, self._reject("grpc"), self.otlp.max_payload, self.otlp.connections)
        target = f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"
        try:
            bound = server.add_insecure_port(target)
        except RuntimeError as e:  # grpc raises RuntimeError when the port is taken
            raise OSError(str(e)) from None
        if bound == 0:
            raise OSError("address in use or unavailable")
        await server.start()
        self._grpc = server
        self.grpc_address = (host, bound)

    async def _stop_grpc(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=RECEIVER_GRACE_S)
            self._grpc = None
            self.grpc_address = None

    async def _stop_http(self) -> None:
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None
            self.http_address = None

    async def _stop_receivers(self) -> None:
        # Side by side: each waits out its grace for exports in flight.
        await asyncio.gather(self._stop_grpc(), self._stop_http())

    async def stop(self) -> None:
        await self._stop_receivers()
        if self.forwarder is not None:
            await self.forwarder.stop(budget_s=FORWARD_FLUSH_BUDGET_S)
        if self._pipeline is not None:
            self._pipeline.close()
        self.heap.cancel()

    async def reload(self, config: TracingConfig) -> None:
        old, self.otlp = self.otlp, config.otlp
        self.explain_settings = config.explain
        self.enricher.settings = config.explain
        self.enricher.judge.slo = config.explain.slo
        self.resolver.workers = {w.name: w for w in config.workers}
        def receiving(o: OtlpSettings) -> tuple[object, ...]:
            return o.http_listen, o.grpc_listen, o.max_payload, o.connections, o.body_timeout

        if receiving(old) != receiving(self.otlp):
            await self._stop_receivers()
            await self._start_receivers()
        if old.forward != self.otlp.forward:
            if self.forwarder is not None:
                await self.forwarder.stop()
                self.forwarder = None
            if self.otlp.forward.endpoint:
                self.forwarder = Forwarder(self.otlp.forward)
                await self.forwarder.start()
            self.enricher.annotate = self.forwarder is not None

    @classmethod
    def add_routes(cls, app: web.Application, live: Callable[[], TracingSubsystem | None]) -> None:
        # While tracing is off there is no explain token to check and nothing to
        # explain: the routes answer 503 (explain_api) to anyone.
        def recent() -> RecentRequests | None:
            s = live()
            return s.recent if s is not None else None

        def token() -> str | None:
            s = live()
            return s.explain_settings.token if s is not None else None

        add_explain_routes(app, recent, token)

    def samples(self) -> Iterable[Sample]:
        yield from self.metrics.samples()
        yield OTLP_RECEIVER_UP.emit({"transport": "http"}, 1.0 if self._http_runner else 0.0)
        yield OTLP_RECEIVER_UP.emit({"transport": "grpc"}, 1.0 if self._grpc else 0.0)
        yield from self.http_listener_stats.samples()
        for (transport, reason), n in sorted(self.rejected.items()):
            yield OTLP_REJECTED_TOTAL.emit({"transport": transport, "reason": reason}, float(n))
        c = self.enricher.counts
        for kind, n in (("llm_request", c.llm_request), ("other", c.other), ("invalid", c.invalid),
                        ("aborted", c.aborted), ("startup", c.startup)):
            yield OTLP_RECEIVED_SPANS_TOTAL.emit({"kind": kind}, float(n))
        for worker, n in sorted(dict(self.enricher.worker_spans).items()):
            yield REQUEST_SPANS_TOTAL.emit({"worker": worker}, float(n))
        yield OTLP_ENRICH_SECONDS_TOTAL.emit({}, self.enricher.enrich_seconds_total)
        if self.forwarder is not None:
            yield OTLP_FORWARDED_SPANS_TOTAL.emit({}, float(self.forwarder.forwarded_spans_total))
            yield OTLP_FORWARD_QUEUE_SPANS.emit({}, float(self.forwarder.queued_spans))
            for reason, n in sorted(self.forwarder.dropped.items()):
                yield OTLP_FORWARD_DROPPED_SPANS_TOTAL.emit({"reason": reason}, float(n))

    def doctor(self) -> Iterable[DoctorRow]:
        fix = "free the port or set otlp.http_listen / otlp.grpc_listen to another address"
        for transport, addr in (("http", self.http_address), ("grpc", self.grpc_address)):
            if addr is not None:
                yield DoctorRow("tracing", f"otlp {transport}", "ok", f"listening on {addr[0] or '*'}:{addr[1]}")
            else:
                yield DoctorRow("tracing", f"otlp {transport}", "fail",
                                self.receiver_errors.get(transport, "not listening"), fix)
