"""Forwarding enriched spans upstream: batching, retries, bounded queue, drops."""

import asyncio
import threading
import time

import pytest
from aiohttp import web
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent.tracing import spans as sp
from agent.tracing.forward import Forwarder, span_count
from agent.tracing.settings import ForwardSettings

from .agentloop import AgentLoop
from .sdkspans import emit_llm_request, emit_other, provider
from .spanfactory import export


class Upstream:
    """A stand-in OTLP collector: records each export; answers with `statuses` in turn."""

    def __init__(self, statuses=(200,)) -> None:
        self.statuses = list(statuses)
        self.received: list[ExportTraceServiceRequest] = []
        self.calls = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        if status == 200:
            self.received.append(ExportTraceServiceRequest.FromString(await request.read()))
        return web.Response(status=status)

    def __enter__(self):
        self.thread.start()

        async def start():
            app = web.Application()
            app.router.add_post("/v1/traces", self._handle)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]

        self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.port}/v1/traces"
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_enriched_spans_reach_upstream():
    with Upstream() as up:
        with AgentLoop({"otlp": {"forward": {"endpoint": up.url, "interval": "50ms"}}}) as agent:
            tp = provider(OTLPSpanExporter(endpoint=agent.http_url))
            trace_id = emit_llm_request(tp)
            emit_other(tp)
            tp.shutdown()
            agent.flush()
            # counted once the upstream's answer is back, a moment after it recorded the body
            assert wait_for(lambda: agent.tracing.forwarder.forwarded_spans_total == 2)
            assert sum(span_count(r) for r in up.received) == 2
        spans = {s.name: s for r in up.received for _, s in sp.iter_spans(r)}
        llm = sp.attributes(spans["llm_request"].attributes)
        assert spans["llm_request"].trace_id.hex() == trace_id
        assert llm["infernode.cause"] == "no known cause" and llm["infernode.cause.count"] == 0
        assert llm["infernode.slow"] is False
        # other spans pass through untouched
        assert not any(k.startswith("infernode.") for k in sp.attributes(spans["preprocess"].attributes))


def run(coro):
    return asyncio.run(coro)


def test_batches_respect_batch_size():
    async def main():
        with Upstream() as up:
            f = Forwarder(ForwardSettings(endpoint=up.url, batch_spans=5, interval=60))
            await f.start()
            for _ in range(4):
                f.submit(export(3))
            await f.flush()
            await f.stop()
            return [span_count(r) for r in up.received], f.forwarded_spans_total
    sizes, total = run(main())
    assert total == 12 and sizes == [3, 3, 3, 3]  # two exports of 3 would exceed 5


def test_retry_then_success():
    async def main():
        with Upstream(statuses=(503, 503, 200)) as up:
            f = Forwarder(ForwardSettings(endpoint=up.url, max_retries=3, interval=60))
            await f.start()
            f.submit(export(2))
            await f.flush()
            await f.stop()
            return up.calls, f.forwarded_spans_total, f.dropped
    calls, total, dropped = run(main())
    assert (calls, total, dropped) == (3, 2, {})


def test_retries_exhausted_are_dropped_and_counted():
    async def main():
        with Upstream(statuses=(503,)) as up:
            f = Forwarder(ForwardSettings(endpoint=up.url, max_retries=1, interval=60))
            await f.start()
            f.submit(export(2))
            await f.flush()
            await f.stop()
            return up.calls, f.dropped
    calls, dropped = run(main())
    assert calls == 2 and dropped == {"retries_exhausted": 2}


def test_client_error_is_not_retried():
    async def main():
        with Upstream(statuses=(400,)) as up:
            f = Forwarder(ForwardSettings(endpoint=up.url, max_retries=5, interval=60))
            await f.start()
            f.submit(export(1))
            await f.flush()
            await f.stop()
            return up.calls, f.dropped
    assert run(main()) == (1, {"rejected": 1})


def test_unreachable_upstream_and_full_queue_drop_oldest():
    async def main():
        f = Forwarder(ForwardSettings(endpoint="http://127.0.0.1:9/v1/traces", queue_spans=5,
                                      batch_spans=100, max_retries=0, interval=60, timeout=1))
        await f.start()
        for _ in range(4):
            f.submit(export(2))
        queued = f.queued_spans
        await f.flush()
        await f.stop()
        return queued, f.dropped
    queued, dropped = run(main())
    assert queued == 4  # two exports of 2 were dropped to stay within 5
    assert dropped == {"queue_full": 4, "retries_exhausted": 4}


def test_forward_endpoint_must_be_http():
    from agent.config import ConfigError, parse_config
    with pytest.raises(ConfigError, match="otlp.forward.endpoint"):
        parse_config({"otlp": {"forward": {"endpoint": "grpc://x:4317"}}})
