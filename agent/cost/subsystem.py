"""The cost ledger as a daemon subsystem: every `cost.interval` it books what each
worker's GPUs did (agent/cost/ledger.py), exposes the totals and answers
GET /cost?since=SECONDS for `infernode cost`.

It reads three providers others publish (agent/services.py): the worker
supervisor's holdings, the GPU collector's utilization and energy, the span
pipeline's token totals. A missing one books nothing of its kind: without the GPU
collector there is no busy share or energy; without the span pipeline no tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from agent.cost.ledger import Ledger, Totals
from agent.cost.prices import PriceBook
from agent.cost.settings import CostConfig, CostSettings
from agent.cost.specs import (
    COST_BUDGET,
    COST_INFO,
    COST_SPECS,
    GPU_HELD,
    WORKER_COST_TOTAL,
    WORKER_ENERGY_JOULES_TOTAL,
    WORKER_GPU_BUSY_SECONDS_TOTAL,
    WORKER_GPU_IDLE_SECONDS_TOTAL,
    WORKER_GPU_SECONDS_TOTAL,
)
from agent.doctor_row import DoctorRow
from agent.paths import Paths
from agent.runtime import cancel_and_wait
from agent.samples import Sample
from agent.subsystem import Subsystem, SubsystemContext, off_response
from agent.usage import GpuUsage

log = logging.getLogger("infernode.cost")
MAX_SINCE_S = 7 * 86400


class CostSubsystem(Subsystem[CostConfig]):
    name = "cost"
    specs = COST_SPECS

    @classmethod
    def enabled(cls, config: CostConfig) -> bool:
        return bool(config.workers)

    def __init__(self, ctx: SubsystemContext[CostConfig]) -> None:
        super().__init__(ctx)
        self.settings: CostSettings = ctx.config.cost
        self.configured_gpus = sorted({g for w in ctx.config.workers for g in w.gpus})
        self.prices = PriceBook(self.settings)
        self.ledger = Ledger(self.prices, self.settings.history, time.time(), time.monotonic())
        self._usage: dict[int, GpuUsage] = {}
        self._task: asyncio.Task[None] | None = None
        self._warned: set[str] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def reload(self, config: CostConfig) -> None:
        # Prices apply from now on; what was booked stays booked at the old ones.
        self.settings = config.cost
        self.prices.settings = config.cost
        self.ledger.history_s = config.cost.history
        self.configured_gpus = sorted({g for w in config.workers for g in w.gpus})

    async def _loop(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one bad booking must not end the ledger
                log.exception("cost booking failed")
            await asyncio.sleep(self.settings.interval)

    def tick(self) -> None:
        services = self.ctx.services
        holdings = services.worker_holdings() if services.worker_holdings else []
        usage = services.gpu_usage() if services.gpu_usage else {}
        tokens = services.request_token_totals() if services.request_token_totals else {}
        self._usage = usage
        self.ledger.advance(time.monotonic(), time.time(), holdings, usage, tokens)
        self._warn_once()

    def _warn_once(self) -> None:
        for model in sorted(self.prices.defaulted - self._warned):
            log.warning("cost: GPU model %r is not in cost.gpu_hour_price; priced at cost.default_gpu_hour_price",
                        model)
            self._warned.add(model)
        for model in sorted(self.prices.unpriced - self._warned):
            if self.settings.priced:
                log.warning("cost: GPU model %r has no price (not in cost.gpu_hour_price, no "
                            "cost.default_gpu_hour_price); its GPU cost is not reported", model)
            self._warned.add(model)
        for key in self.prices.unknown_models(u.model_name for u in self._usage.values()):
            if self._usage and f"key:{key}" not in self._warned:
                log.warning("cost: cost.gpu_hour_price names %r, which is no GPU on this node", key)
                self._warned.add(f"key:{key}")

    # ---- exposition ---------------------------------------------------------

    def samples(self) -> Iterable[Sample]:
        priced = self.settings.priced
        for worker, book in sorted(self.ledger.books.items()):
            labels = {"worker": worker, "model_name": book.model_name}
            t = book.totals
            yield WORKER_GPU_SECONDS_TOTAL.emit(labels, t.gpu_seconds)
            yield WORKER_GPU_BUSY_SECONDS_TOTAL.emit(labels, t.busy_seconds)
            yield WORKER_GPU_IDLE_SECONDS_TOTAL.emit(labels, t.idle_seconds)
            yield WORKER_ENERGY_JOULES_TOTAL.emit(labels, t.energy_joules)
            # Never a cost of 0: a component appears once something was priced.
            for component, v in (("gpu", t.cost_gpu), ("energy", t.cost_energy)):
                if priced and v > 0:
                    yield WORKER_COST_TOTAL.emit({**labels, "component": component}, v)
        held = self.ledger.held
        for gpu in sorted(set(self._usage) | set(self.configured_gpus) | set(held)):
            yield GPU_HELD.emit({"gpu": str(gpu)}, 1.0 if gpu in held else 0.0)
        if priced:
            yield COST_INFO.emit({"currency": self.settings.currency}, 1.0)
        if self.settings.budget_per_million_tokens is not None:
            yield COST_BUDGET.emit({}, self.settings.budget_per_million_tokens)

    def report(self, since_s: float) -> dict[str, Any]:
        wall = time.time()
        covered = self.ledger.covered_seconds(wall)
        workers = []
        for worker, t in sorted(self.ledger.window(since_s, wall).items()):
            workers.append(_row(worker, self.ledger.books[worker].model_name, t, self.settings.priced))
        note = ""
        if since_s > covered:
            note = (f"the agent holds {covered / 3600:.2f} h of history (since it started, at most "
                    f"cost.history); the window asked was {since_s / 3600:.2f} h")
        return {"currency": self.settings.currency if self.settings.priced else None, "since_seconds": since_s,
                "covered_seconds": covered, "history_short": since_s > covered, "note": note, "workers": workers}

    # ---- doctor ---------------------------------------------------------------

    def doctor(self) -> Iterable[DoctorRow]:
        s = self.settings
        if not s.priced:
            yield DoctorRow("cost", "prices", "warn", "no price configured: cost metrics are absent "
                            "(GPU-seconds, idle and energy are still counted)",
                            "set cost.gpu_hour_price (per GPU model) or cost.default_gpu_hour_price")
            return
        yield DoctorRow("cost", "prices", "ok", f"in {s.currency}: {len(s.gpu_hour_price)} GPU model(s) priced"
                        + (f", default {s.default_gpu_hour_price}/GPU-hour" if s.default_gpu_hour_price else "")
                        + (f", {s.energy_kwh_price}/kWh" if s.energy_kwh_price else ""))
        for model in sorted(self.prices.defaulted):
            yield DoctorRow("cost", f"GPU model {model}", "warn",
                            "not in cost.gpu_hour_price: priced at cost.default_gpu_hour_price",
                            f"add {model!r} to cost.gpu_hour_price")
        for model in sorted(self.prices.unpriced):
            yield DoctorRow("cost", f"GPU model {model}", "warn", "no price: its workers' GPU cost is not reported",
                            f"add {model!r} to cost.gpu_hour_price or set cost.default_gpu_hour_price")
        for key in self.prices.unknown_models(u.model_name for u in self._usage.values()) if self._usage else ():
            yield DoctorRow("cost", f"price for {key}", "warn", "names no GPU on this node",
                            "check the model name against `infernode topology` (NVML's name)")

    # ---- HTTP -----------------------------------------------------------------

    @classmethod
    def add_routes(cls, app: web.Application, live: Callable[[], CostSubsystem | None]) -> None:
        async def cost(request: web.Request) -> web.Response:
            if (self := live()) is None:
                return off_response("no workers in the config: there is nothing to account")
            raw = request.query.get("since", "3600")
            try:
                since = float(raw)
            except ValueError:
                return web.json_response({"error": f"since {raw[:40]!r} is not a number of seconds"}, status=400)
            if not 0 < since <= MAX_SINCE_S:
                return web.json_response({"error": f"since {raw[:40]!r} must be above 0 and at most "
                                                   f"{MAX_SINCE_S} seconds"}, status=400)
            return web.json_response(self.report(since))

        async def doctor(_: web.Request) -> web.Response:
            if (self := live()) is None:
                return off_response("no workers in the config: there is nothing to account")
            return web.json_response({"rows": [r.to_json() for r in self.doctor()]})

        app.router.add_get("/cost", cost)
        app.router.add_get("/cost/doctor", doctor)

    @classmethod
    def doctor_offline(cls, config: CostConfig, paths: Paths) -> list[DoctorRow]:
        """The running agent's rows (it knows the node's GPU models); the config's
        alone when it cannot be asked."""
        if not config.workers:
            return []
        from agent.worker.cli import agent_base_url, fetch_json

        url = agent_base_url(config.server.listen) + "/cost/doctor"
        try:
            rows = fetch_json(url, timeout=3).get("rows", [])
            return [DoctorRow(r["subsystem"], r["item"], r["status"], r["detail"], r.get("fix", "")) for r in rows]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if not config.cost.priced:
            return [DoctorRow("cost", "prices", "warn", "no price configured: cost metrics are absent",
                              "set cost.gpu_hour_price (per GPU model) or cost.default_gpu_hour_price")]
        return [DoctorRow("cost", "prices", "ok", f"configured in {config.cost.currency} (the agent was not asked "
                          "which GPU models it prices)")]


def _row(worker: str, model: str, t: Totals, priced: bool) -> dict[str, Any]:
    cost = t.cost if priced and t.cost > 0 else None
    return {
        "worker": worker, "model_name": model,
        "gpu_hours": t.gpu_seconds / 3600.0,
        "busy_share": t.busy_seconds / t.gpu_seconds if t.gpu_seconds else None,
        "idle_share": t.idle_seconds / t.gpu_seconds if t.gpu_seconds else None,
        "energy_kwh": t.energy_joules / 3.6e6,
        "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens, "requests": t.requests,
        "cost": cost,
        "cost_gpu": t.cost_gpu if cost is not None else None,
        "cost_energy": t.cost_energy if cost is not None and t.cost_energy > 0 else None,
        "cost_per_million_tokens": t.cost_per_million_tokens() if cost is not None else None,
        "cost_per_million_completion_tokens":
            cost / t.completion_tokens * 1e6 if cost is not None and t.completion_tokens else None,
    }
