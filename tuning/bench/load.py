"""A fixed load on the worker's OpenAI-compatible API, timed as its clients see it.

Streamed completions (`"stream": true` with `stream_options.include_usage`, which
vLLM's completion endpoint honours): TTFT is the time to the first chunk carrying
text, e2e the time to `data: [DONE]`, the output token count the final usage
chunk's `completion_tokens`. Prompts are lists of token ids (vLLM takes them as
they are, no tokenizer involved), a fixed length, and never repeat within a bench,
so that vLLM's prefix cache favours neither side. `ignore_eos` makes every answer
exactly `output_tokens` long.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass

import aiohttp

from tuning.bench.stats import RequestTiming


@dataclass(frozen=True)
class LoadSpec:
    url: str  # the worker's base URL, http://127.0.0.1:8000
    model: str
    requests: int
    concurrency: int
    prompt_tokens: int
    output_tokens: int
    timeout: float = 300.0


class LoadError(Exception):
    """A request failed: the numbers of this round would not mean anything."""


def prompt_ids(seed: int, length: int) -> list[int]:
    """`length` token ids, different for every seed (ids 1000-30999: ordinary tokens
    of any tokenizer with a 32k vocabulary or more, clear of its special tokens)."""
    rng = random.Random(seed)
    return [rng.randrange(1000, 31000) for _ in range(length)]


async def _one(session: aiohttp.ClientSession, spec: LoadSpec, seed: int) -> RequestTiming:
    body = {
        "model": spec.model, "prompt": prompt_ids(seed, spec.prompt_tokens), "max_tokens": spec.output_tokens,
        "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True, "temperature": 0,
    }
    start = time.monotonic()
    first: float | None = None
    tokens: int | None = None
    chunks = 0
    async with session.post(f"{spec.url}/v1/completions", json=body) as resp:
        if resp.status != 200:
            raise LoadError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
        async for raw in resp.content:
            line = raw.decode(errors="replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise LoadError(f"not a JSON event: {data[:120]!r}") from None
            if "error" in chunk:
                raise LoadError(f"the engine failed the request: {str(chunk['error'])[:200]}")
            for choice in chunk.get("choices") or []:
                if choice.get("finish_reason") == "abort":
                    raise LoadError("the engine aborted the request (is the worker draining?)")
                if choice.get("text"):
                    chunks += 1
                    if first is None:
                        first = time.monotonic()
            if chunk.get("usage"):
                tokens = int(chunk["usage"].get("completion_tokens", 0))
    end = time.monotonic()
    if first is None:
        raise LoadError("the answer carried no text")
    return RequestTiming(first - start, end - start, tokens if tokens is not None else chunks)


async def run_load(spec: LoadSpec, seed: int) -> list[RequestTiming]:
    """`spec.requests` requests, at most `spec.concurrency` at a time; seeds
    seed..seed+requests-1. Raises LoadError at the first failed request."""
    semaphore = asyncio.Semaphore(spec.concurrency)
    timeout = aiohttp.ClientTimeout(total=spec.timeout)

    async def bounded(session: aiohttp.ClientSession, i: int) -> RequestTiming:
        async with semaphore:
            return await _one(session, spec, seed + i)

    connector = aiohttp.TCPConnector(limit=spec.concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        try:
            return list(await asyncio.gather(*(bounded(session, i) for i in range(spec.requests))))
        except (aiohttp.ClientError, TimeoutError) as e:
            raise LoadError(f"{spec.url}: {e or type(e).__name__}") from e


async def served_model(url: str, timeout: float = 10) -> str:
    """The first model GET /v1/models lists."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        try:
            async with session.get(f"{url}/v1/models") as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise LoadError(f"{url}/v1/models: {e or type(e).__name__}") from e
    models = [m.get("id") for m in (data.get("data") or []) if isinstance(m, dict)] if isinstance(data, dict) else []
    if not models or not models[0]:
        raise LoadError(f"{url}/v1/models lists no model")
    return str(models[0])
