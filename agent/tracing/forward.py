"""Forwards enriched spans to the fleet's OTLP/HTTP endpoint.

Exports queue up (bounded by spans); a flush loop batches them into one request
per `batch_spans`, retries what the upstream may accept later (connection errors,
429, 502, 503, 504) with exponential backoff, and drops, counted by reason, what
it will not (other 4xx), what stays undeliverable after `max_retries`, and the
oldest when the queue is full. The agent never blocks ingest on the upstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import aiohttp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agent.runtime import cancel_and_wait
from agent.tracing.settings import ForwardSettings

log = logging.getLogger("infernode.tracing.forward")

RETRYABLE = frozenset((429, 502, 503, 504))


def span_count(req: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)


class Forwarder:
    def __init__(self, settings: ForwardSettings) -> None:
        self.settings = settings
        self._queue: deque[tuple[ExportTraceServiceRequest, int]] = deque()
        self._queued_spans = 0
        self.forwarded_spans_total = 0
        self.dropped: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._flush_lock = asyncio.Lock()

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    def _drop(self, reason: str, n: int) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def submit(self, req: ExportTraceServiceRequest) -> None:
        n = span_count(req)
        if n == 0:
            return
        self._queue.append((req, n))
        self._queued_spans += n
        while self._queued_spans > self.settings.queue_spans and self._queue:
            _, old = self._queue.popleft()
            self._queued_spans -= old
            self._drop("queue_full", old)
        if self._queued_spans >= self.settings.batch_spans:
            self._wake.set()

    def _take_batch(self) -> tuple[ExportTraceServiceRequest, int]:
        batch = ExportTraceServiceRequest()
        n = 0
        while self._queue and (n == 0 or n + self._queue[0][1] <= self.settings.batch_spans):
            req, k = self._queue.popleft()
            self._queued_spans -= k
            batch.resource_spans.extend(req.resource_spans)
            n += k
        return batch, n

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._task = asyncio.create_task(self._loop())

    async def stop(self, budget_s: float = 2.0) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        # One last attempt for what is queued, inside the shutdown budget.
        if self._queue and self._session is not None:
            try:
                await asyncio.wait_for(self.flush(retries=0), timeout=budget_s)
            except TimeoutError:
                pass
        if self._queued_spans:
            self._drop("shutdown", self._queued_spans)
            self._queue.clear()
            self._queued_spans = 0
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self, retries: int | None = None) -> None:
        async with self._flush_lock:
            while self._queue:
                batch, n = self._take_batch()
                try:
                    await self._send(batch, n, self.settings.max_retries if retries is None else retries)
                except asyncio.CancelledError:
                    # Stopped mid-send: the batch goes back, so shutdown sends or counts it.
                    self._queue.appendleft((batch, n))
                    self._queued_spans += n
                    raise

    async def _send(self, batch: ExportTraceServiceRequest, n: int, retries: int) -> None:
        assert self._session is not None
        body = batch.SerializeToString()
        headers: dict[str, Any] = {"Content-Type": "application/x-protobuf", **self.settings.headers}
        delay = 0.2
        for attempt in range(retries + 1):
            try:
                async with self._session.post(str(self.settings.endpoint), data=body, headers=headers) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        self.forwarded_spans_total += n
                        return
                    if resp.status not in RETRYABLE:
                        log.warning("upstream refused %d spans: HTTP %d", n, resp.status)
                        self._drop("rejected", n)
                        return
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                log.debug("forward attempt %d failed: %s", attempt + 1, e)
            if attempt < retries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._drop("retries_exhausted", n)
