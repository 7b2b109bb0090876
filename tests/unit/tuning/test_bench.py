"""`infernode tune bench`: the statistics, the rounds' order and what undo leaves,
and the refusals (a node taking traffic, an enforcing agent, no worker)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from aiohttp import web

from agent.paths import Paths
from tests.harness.prometheus import free_port
from tuning.bench import runner
from tuning.bench.stats import Comparison, RequestTiming, Side, compare, percentile, round_summary
from tuning.engine import build_engine
from tuning.settings import TuningSettings
from tuning.state import load_state

from .conftest import tree
from .test_isolation_fixture import _isolatable


def test_percentile_interpolates_like_numpy():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10], 99) == 10
    assert percentile([1, 2, 3, 4, 5], 90) == pytest.approx(4.6)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_tpot_excludes_the_first_token_and_one_token_answers():
    assert RequestTiming(0.1, 1.1, 11).tpot == pytest.approx(0.1)
    assert RequestTiming(0.1, 0.1, 1).tpot is None
    summary = round_summary([RequestTiming(0.1, 0.1, 1), RequestTiming(0.2, 1.2, 11)])
    assert summary["tpot"][50] == pytest.approx(0.1) and summary["ttft"][50] == pytest.approx(0.15)


def test_verdict_needs_ranges_apart_and_a_difference_beyond_the_uncertainty():
    better = Comparison("tpot", 50, Side.of([10, 11, 12]), Side.of([5, 6, 7]))
    assert better.verdict == "better" and better.difference == -5 and better.difference_pct == pytest.approx(-100 * 5 / 11)
    assert Comparison("tpot", 50, Side.of([5, 6, 7]), Side.of([10, 11, 12])).verdict == "worse"
    assert Comparison("tpot", 50, Side.of([10, 11, 12]), Side.of([9, 10.5, 13])).verdict == "within spread"
    # Apart, but by less than the rounds' own scatter: not called.
    assert Comparison("tpot", 50, Side.of([10, 10.1, 20]), Side.of([1, 9.9, 9.95])).verdict == "within spread"


def test_compare_covers_what_every_round_has():
    rounds = [round_summary([RequestTiming(0.1, 1.0, 10)])] * 3
    got = compare(rounds, rounds)
    assert {(c.metric, c.percentile) for c in got} == {(m, p) for m in ("ttft", "tpot", "e2e") for p in (50, 90, 99)}
    assert all(c.verdict == "within spread" for c in got)


def test_rounds_alternate_and_undo_leaves_the_nodes_own_profile(tmp_path, root, monkeypatch):
    """inference-latency applied as the node's profile; the bench of inference-isolated
    must end with the latency profile still applied and recorded, nothing of its own."""
    _isolatable(root)
    paths = Paths(root)
    build_engine(paths, TuningSettings(profile_dirs=[]), "inference-latency").apply()
    node_state = load_state(paths)
    assert node_state is not None
    applied_tree = tree(root)
    engine = build_engine(paths, TuningSettings(profile_dirs=[]), "inference-isolated")
    seen: list[str] = []

    async def fake_load(spec, seed):
        # The side is visible on the host: the workqueue mask is housekeeping only after the apply.
        mask = (root / "sys/devices/virtual/workqueue/cpumask").read_text().strip()
        seen.append("after" if mask == "01010101" else "before")
        return [RequestTiming(0.05, 0.5, 10)] * 4

    monkeypatch.setattr(runner, "run_load", fake_load)
    from tuning.bench.load import LoadSpec

    report = runner.bench(engine, LoadSpec("http://x", "m", 4, 1, 8, 10), rounds=3, keep=False)
    assert seen == ["before", "before", "after", "after", "before", "before", "after"]  # warm-up first
    assert len(report.before) == len(report.after) == 3 and report.kept is False
    assert "workqueue.cpumask" in report.changed and "processes.cpu_affinity" not in report.changed
    assert tree(root) == applied_tree
    state = load_state(paths)
    assert state is not None and state.originals == node_state.originals


def test_keep_leaves_the_profile_applied_and_recorded(root, monkeypatch):
    _isolatable(root)
    engine = build_engine(Paths(root), TuningSettings(profile_dirs=[]), "inference-isolated")

    async def fake_load(spec, seed):
        return [RequestTiming(0.05, 0.5, 10)] * 2

    monkeypatch.setattr(runner, "run_load", fake_load)
    from tuning.bench.load import LoadSpec

    report = runner.bench(engine, LoadSpec("http://x", "m", 2, 1, 8, 10), rounds=2, keep=True)
    assert report.kept is True
    assert (root / "sys/devices/virtual/workqueue/cpumask").read_text() == "01010101\n"
    assert engine.verify() == []


def test_a_failed_round_puts_the_host_back(root, monkeypatch):
    _isolatable(root)
    before = tree(root)
    engine = build_engine(Paths(root), TuningSettings(profile_dirs=[]), "inference-isolated")
    calls = []

    async def failing_load(spec, seed):
        calls.append(seed)
        if len(calls) == 3:  # the first "after" run
            raise OSError("connection reset")
        return [RequestTiming(0.05, 0.5, 10)]

    monkeypatch.setattr(runner, "run_load", failing_load)
    from tuning.bench.load import LoadSpec

    with pytest.raises(runner.BenchError, match="the load failed: connection reset; the host is as it was"):
        runner.bench(engine, LoadSpec("http://x", "m", 1, 1, 8, 10), rounds=2, keep=False)
    assert tree(root) == before
    assert load_state(Paths(root)) is None


def test_a_profile_already_in_effect_has_no_before(root):
    _isolatable(root)
    engine = build_engine(Paths(root), TuningSettings(profile_dirs=[]), "inference-isolated")
    engine.apply()
    from tuning.bench.load import LoadSpec

    with pytest.raises(runner.BenchError, match="already in effect here"):
        runner.bench(engine, LoadSpec("http://x", "m", 1, 1, 8, 10), rounds=1, keep=False)


class FakeAgent:
    """An agent's GET /workers answering what the test says (the real route's shape:
    agent/worker/subsystem.py list_workers)."""

    def __init__(self, body: dict) -> None:
        self.port = free_port()
        self.body = body
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        assert self.ready.wait(10)

    def _serve(self) -> None:
        async def workers(_: web.Request) -> web.Response:
            return web.json_response(self.body)

        app = web.Application()
        app.router.add_get("/workers", workers)
        runner_ = web.AppRunner(app)
        self.loop.run_until_complete(runner_.setup())
        self.loop.run_until_complete(web.TCPSite(runner_, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()


def bench_cfg(tmp_path: Path, agent_port: int, workers: int = 1, mode: str = "audit") -> str:
    import yaml

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"listen": f"127.0.0.1:{agent_port}"},
        "workers": [{"name": f"w{i}", "port": free_port(), "command": ["true"]} for i in range(workers)],
        "tuning": {"profile_dirs": [], "mode": mode},
    }))
    return str(path)


def bench_cli(config: str, *args: str):
    from .conftest import invoke

    return invoke("tune", "bench", "--config", config, "--profile", "inference-isolated", *args)


def test_refuses_a_node_in_rotation_unless_forced(tmp_path):
    agent = FakeAgent({"workers": [{"worker": "w0", "ready": True}], "schedulable": True, "reason": ""})
    result = bench_cli(bench_cfg(tmp_path, agent.port))
    assert result.exit_code == 1
    assert "this node is schedulable and w0 in rotation" in result.output
    assert "infernode cordon --reason 'tune bench'" in result.output
    # Cordoned (GET /workers as the supervisor answers then): it goes on, and stops
    # at the worker that does not answer.
    agent.body = {"workers": [{"worker": "w0", "ready": False, "ready_reason": "node cordoned: tune bench"}],
                  "schedulable": False, "reason": "cordoned: tune bench", "cordoned": True}
    result = bench_cli(bench_cfg(tmp_path, agent.port))
    assert result.exit_code == 1 and "no worker answers at http://127.0.0.1:" in result.output


def test_refuses_when_it_cannot_tell(tmp_path):
    result = bench_cli(bench_cfg(tmp_path, free_port()))
    assert result.exit_code == 1 and "cannot tell whether this node takes traffic" in result.output


def test_refuses_an_enforcing_agent(tmp_path):
    agent = FakeAgent({"workers": [], "schedulable": True, "reason": ""})
    result = bench_cli(bench_cfg(tmp_path, agent.port, mode="enforce"))
    assert result.exit_code == 1 and "tuning.mode: enforce" in result.output


@pytest.mark.parametrize("workers,args,message", [
    (2, (), "say which worker to load: --worker NAME or --url URL (configured: w0, w1)"),
    (1, ("--worker", "nope"), "no worker named 'nope' in the config (configured: w0)"),
])
def test_which_worker_is_bad_input(tmp_path, workers, args, message):
    result = bench_cli(bench_cfg(tmp_path, free_port(), workers=workers), *args, "--force")
    assert result.exit_code == 2 and message in result.output


def test_bad_numbers_exit_2(tmp_path):
    result = bench_cli(bench_cfg(tmp_path, free_port()), "--rounds", "0")
    assert result.exit_code == 2 and "--rounds" in result.output
