"""Why was this request slow: the ranking (agent/tracing/ranking.py), worded
(agent/tracing/wording.py) when first asked for.

Pure logic: a RequestSpan, the request's scope (worker, cgroup, GPUs, pids) and
the events overlapping it in, an Explanation out. The pipeline does the lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agent.events import Event
from agent.tracing.delivery import ClientDelay
from agent.tracing.engine_causes import EngineSettings, engine_causes
from agent.tracing.engine_load import LoadView
from agent.tracing.ranking import RequestScope, rank
from agent.tracing.spans import RequestSpan
from agent.tracing.wording import Explanation, context, word_causes, word_evidence


def explain(
    r: RequestSpan,
    scope: RequestScope,
    events: Iterable[Event],
    slow: list[dict[str, object]] | None = None,
    min_cause_s: float = 0.001,
    min_share: float = 0.0,
    load: Callable[[], LoadView | None] | None = None,
    engine: EngineSettings | None = None,
    client: Callable[[], ClientDelay | None] | None = None,
) -> Explanation:
    """Rank the causes among `events` (already known to concern the request), then
    the engine's own from the worker's load (`load`, asked now: neighbours that
    arrived since count); they are put into words on first use. `min_share`: see
    ExplainSettings.min_cause_share. `client`: the delay outside the span, looked
    up when asked (agent/tracing/delivery.py)."""
    ranking = rank(r, events, min_cause_s, min_share)
    view = load() if load is not None else None
    if view is not None:
        settings = engine or EngineSettings(min_cause_s=min_cause_s)
        # The engine's windows are among the relevant events; each cause picks its kinds.
        ranking.add_derived(engine_causes(r, ranking, view, ranking.relevant, scope.batch_limit, settings),
                            r.e2e, min_share)
    by_kind: dict[str, float] = {}
    for c in ranking.timed:
        by_kind[c.kind] = by_kind.get(c.kind, 0.0) + c.explained_s
    return Explanation(r, scope.worker, ranking.phases, lambda: word_causes(r, ranking), ranking.relevant,
                       slow or [], ranking.explained_s, ranking.more, ranking.top_kind, context(ranking), scope,
                       min_cause_s, min_share, lambda: word_evidence(r, ranking), load=load, engine=engine, client=client,
                       seconds_by_kind=by_kind)
