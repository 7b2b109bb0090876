"""Why was this request slow: the ranking (agent/tracing/ranking.py), worded
(agent/tracing/wording.py) when first asked for.

Pure logic: a RequestSpan, the request's scope (worker, cgroup, GPUs, pids) and
the events overlapping it in, an Explanation out. The pipeline does the lookups.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.events import Event
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
) -> Explanation:
    """Rank the causes among `events` (already known to concern the request); they
    are put into words on first use. `min_share`: see ExplainSettings.min_cause_share."""
    ranking = rank(r, events, min_cause_s, min_share)
    return Explanation(r, scope.worker, ranking.phases, lambda: word_causes(r, ranking), ranking.relevant,
                       slow or [], ranking.explained_s, ranking.more, ranking.top_kind, context(ranking), scope,
                       min_cause_s, min_share, lambda: word_evidence(r, ranking))
