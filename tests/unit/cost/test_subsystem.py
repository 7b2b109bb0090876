"""The cost subsystem over providers standing in for the worker supervisor, the GPU
collector and the span pipeline: what it exposes, reports and tells `doctor`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.cost.cli import format_cost
from agent.cost.subsystem import CostSubsystem
from agent.events import EventStore
from agent.paths import Paths
from agent.plugins import Config
from agent.services import Services
from agent.subsystem import SubsystemContext
from agent.usage import GpuUsage, TokenTotals, WorkerHolding

H100 = "NVIDIA H100 80GB HBM3"


class Node:
    """What the providers answer; the test moves it along."""

    def __init__(self) -> None:
        self.active = True
        self.in_flight: float | None = 1
        self.tokens = TokenTotals(0, 0, 0)

    def holdings(self) -> list[WorkerHolding]:
        return [WorkerHolding("w0", "llama", (0,), self.active, self.in_flight)]

    def usage(self) -> dict[int, GpuUsage]:
        return {0: GpuUsage(H100, 0.5, None), 1: GpuUsage(H100, 0.0, None)}

    def token_totals(self) -> dict[str, TokenTotals]:
        return {"w0": self.tokens}


def make(cost: dict, node: Node) -> CostSubsystem:
    cfg = Config.model_validate({"workers": [{"name": "w0", "gpus": [0], "port": 8000,
                                              "command": ["/bin/true"]}], "cost": cost})
    services = Services(worker_holdings=node.holdings, gpu_usage=node.usage, request_token_totals=node.token_totals)
    return CostSubsystem(SubsystemContext(Paths(Path("/")), EventStore(), services, cfg))


def by_name(sub: CostSubsystem) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in sub.samples()}


def test_priced_worker_has_cost_series_and_gpu_held(monkeypatch) -> None:
    node = Node()
    sub = make({"gpu_hour_price": {H100: 3.6}, "budget_per_million_tokens": 2.0, "currency": "EUR"}, node)
    clock = iter([0.0, 10.0])
    monkeypatch.setattr("agent.cost.subsystem.time.monotonic", lambda: next(clock))
    sub.tick()
    node.tokens = TokenTotals(1000, 1000, 10)
    sub.tick()
    m = by_name(sub)
    w = (("model_name", "llama"), ("worker", "w0"))
    assert m[("infernode_worker_gpu_seconds_total", w)] == pytest.approx(10)
    assert m[("infernode_worker_gpu_busy_seconds_total", w)] == pytest.approx(5)
    assert m[("infernode_worker_cost_total", (("component", "gpu"), *w))] == pytest.approx(0.01)
    assert ("infernode_worker_cost_total", (("component", "energy"), *w)) not in m, "no energy price: absent, not 0"
    assert m[("infernode_gpu_held", (("gpu", "0"),))] == 1 and m[("infernode_gpu_held", (("gpu", "1"),))] == 0
    assert m[("infernode_cost_info", (("currency", "EUR"),))] == 1
    assert m[("infernode_cost_budget_per_million_tokens", ())] == 2.0
    rep = sub.report(3600)
    row = rep["workers"][0]
    assert rep["currency"] == "EUR" and row["prompt_tokens"] == 1000 and row["gpu_hours"] == pytest.approx(10 / 3600)
    assert row["cost_per_million_tokens"] == pytest.approx(0.01 / 2000 * 1e6)
    assert rep["history_short"] and "history" in rep["note"], "the agent started moments ago"
    text = format_cost(rep)
    assert "EUR / M TOKENS" in text and "w0" in text and "5.0000" in text


def test_no_price_no_cost_metrics_and_doctor_names_the_key(monkeypatch, caplog) -> None:
    node = Node()
    sub = make({}, node)
    clock = iter([0.0, 10.0])
    monkeypatch.setattr("agent.cost.subsystem.time.monotonic", lambda: next(clock))
    sub.tick()
    sub.tick()
    names = {n for n, _ in by_name(sub)}
    assert "infernode_worker_gpu_seconds_total" in names
    assert not names & {"infernode_worker_cost_total", "infernode_cost_info"}
    rows = list(sub.doctor())
    assert rows[0].status == "warn" and "cost.default_gpu_hour_price" in rows[0].fix
    assert sub.report(60)["workers"][0]["cost"] is None
    assert "no price configured" in format_cost(sub.report(60))


def test_a_model_missing_from_the_table_uses_the_default_once_in_log_and_in_doctor(monkeypatch, caplog) -> None:
    node = Node()
    sub = make({"gpu_hour_price": {"NVIDIA A100-SXM4-80GB": 1.5}, "default_gpu_hour_price": 2.0}, node)
    clock = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr("agent.cost.subsystem.time.monotonic", lambda: next(clock))
    with caplog.at_level(logging.WARNING, logger="infernode.cost"):
        for _ in range(3):
            sub.tick()
    said = [r.getMessage() for r in caplog.records]
    assert sum("is not in cost.gpu_hour_price" in m for m in said) == 1
    assert sum("which is no GPU on this node" in m for m in said) == 1
    rows = {r.item: r for r in sub.doctor()}
    assert rows[f"GPU model {H100}"].status == "warn" and "default" in rows[f"GPU model {H100}"].detail
    assert rows["price for NVIDIA A100-SXM4-80GB"].status == "warn"
    t = sub.ledger.books["w0"].totals
    assert t.cost_gpu == pytest.approx(20 * 2.0 / 3600)


def test_cost_cli_rejects_a_bad_window_before_asking_the_agent() -> None:
    for since in ("forever", "-1h", "30d"):
        r = CliRunner().invoke(main, ["cost", "--since", since, "--url", "http://127.0.0.1:9"])
        assert r.exit_code == 2 and "--since" in r.output, r.output


def test_cost_cli_says_when_the_agent_is_not_running() -> None:
    r = CliRunner().invoke(main, ["cost", "--url", "http://127.0.0.1:9"])
    assert r.exit_code == 3 and "cannot reach the agent" in r.output


def test_doctor_offline_without_a_running_agent_reads_the_config(tmp_path) -> None:
    cfg = Config.model_validate({"server": {"listen": "127.0.0.1:9"},
                                 "workers": [{"name": "w0", "gpus": [0], "port": 8000, "command": ["/bin/true"]}]})
    rows = CostSubsystem.doctor_offline(cfg, Paths(Path("/")))
    assert [(r.item, r.status) for r in rows] == [("prices", "warn")] and "cost.default_gpu_hour_price" in rows[0].fix
    assert CostSubsystem.doctor_offline(Config.model_validate({}), Paths(Path("/"))) == []
