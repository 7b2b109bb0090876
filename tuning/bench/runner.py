"""The bench's rounds: the same load with the host as it is and with the profile
applied, alternated, and the profile taken back after each round.

Round i measures one side, then the other, with the order flipped every round
(before-after, after-before, ...), so that a host whose background load drifts
over the minutes of a bench weighs on both sides alike. Taking the profile back is
`Engine.undo`: only what this bench changed, so a node's own applied profile stays
applied and recorded. One warm-up run, not counted, precedes the first round.

Boot parameters are left out (they act only after a reboot), and so are knobs the
agent daemon holds (the C-state latency cap): the report lists both as not measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tuning.bench.load import LoadSpec, run_load
from tuning.bench.stats import Comparison, compare, round_summary
from tuning.engine import HOLD, SET, Engine, EngineError
from tuning.profiles import Profile


class BenchError(Exception):
    """The bench stopped; the message says why and what was put back."""


@dataclass
class BenchReport:
    profile: str
    load: LoadSpec
    rounds: int
    changed: list[str]
    not_measured: list[str]
    before: list[dict[str, dict[int, float]]] = field(default_factory=list)
    after: list[dict[str, dict[int, float]]] = field(default_factory=list)
    kept: bool = False

    @property
    def comparisons(self) -> list[Comparison]:
        return compare(self.before, self.after)

    def to_json(self) -> dict[str, Any]:
        load = {k: v for k, v in vars(self.load).items() if k != "timeout"}
        return {
            "profile": self.profile, "load": load, "rounds": self.rounds, "changed": self.changed,
            "not_measured": self.not_measured, "kept": self.kept,
            "comparisons": [c.to_json() for c in self.comparisons],
            "rounds_detail": {"before": self.before, "after": self.after},
        }


def measurable(engine: Engine) -> tuple[Engine, list[str]]:
    """An engine over the profile's run-time knobs, and what is left out and why."""
    left_out = []
    desired = {}
    for name, value in engine.profile.desired.items():
        if engine.knob(name).takes_effect_at_boot:
            left_out.append(f"{name} (boot parameter: acts only after a reboot)")
        else:
            desired[name] = value
    profile = Profile(engine.profile.name, engine.profile.description, desired, list(engine.profile.files))
    return Engine(engine.ctx, profile), left_out


def bench(engine: Engine, spec: LoadSpec, rounds: int, keep: bool,
          progress: Callable[[str], None] = lambda _: None) -> BenchReport:
    """Run the rounds; raises BenchError (with the host put back) when a round fails."""
    runtime, left_out = measurable(engine)
    rows = runtime.plan()
    left_out += [f"{r.tunable} {r.target} (held by the agent daemon only while it runs)"
                 for r in rows if r.action == HOLD]
    to_set = [r for r in rows if r.action == SET]
    if not to_set:
        raise BenchError(f"profile {engine.profile.name} is already in effect here (or sets nothing this host "
                         "has): there is no before to compare; roll it back first, or bench another profile")
    report = BenchReport(engine.profile.name, spec, rounds, sorted({r.tunable for r in to_set}), left_out)

    seed = 0

    def measure(side: str) -> None:
        nonlocal seed
        progress(f"round {len(report.after if side == 'after' else report.before) + 1}/{rounds}: {side}")
        timings = asyncio.run(run_load(spec, seed))
        seed += spec.requests
        (report.after if side == "after" else report.before).append(round_summary(timings))

    applied = False

    def apply() -> None:
        nonlocal applied
        changed, _ = runtime.apply()
        applied = bool(changed)

    def undo() -> None:
        nonlocal applied
        if applied and runtime.last_change is not None:
            runtime.undo(runtime.last_change)
        applied = False

    try:
        progress("warm-up")
        asyncio.run(run_load(replace(spec, requests=max(spec.concurrency, spec.requests // 4)), -spec.requests))
        for i in range(rounds):
            last = i == rounds - 1
            if i % 2 == 0:
                measure("before")
                apply()
                measure("after")
                if not (last and keep):
                    undo()
            else:
                apply()
                measure("after")
                undo()
                measure("before")
                if last and keep:
                    apply()
    except EngineError as e:
        _put_back(undo)
        raise BenchError(f"tuning: {e}") from e
    except Exception as e:
        _put_back(undo)
        raise BenchError(f"the load failed: {e}; the host is as it was") from e
    report.kept = applied
    return report


def _put_back(undo: Callable[[], None]) -> None:
    try:
        undo()
    except EngineError as e:
        raise BenchError(f"the bench stopped and could not put the host back: {e}") from e
