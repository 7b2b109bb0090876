"""docs/events.md, generated from the event-kind catalog (agent/event_kinds.py)."""

from __future__ import annotations

from pathlib import Path

from agent.event_kinds import KINDS, EventKind, Role

EVENTS_DOC = Path("docs/events.md")

HEADER = """# infernode event kinds

Generated from agent/event_kinds.py by `infernode docs --write`; do not edit by hand.
`make test` fails when this file is stale.

Every event in the agent's event store is of one of these kinds (the store refuses
any other). Its role says what `infernode explain` does with it when it overlaps a
request: a **duration** explains time (grouped by the attribute named), an
**aggregate** is a kernel sum over a window that explains time for its duration
kind, an **instant** is named beside the timed causes (severe ones first), a
**context** event is listed as context, a **record** is kept for its own
readers and never explains a request, and an **engine** window (vLLM's own gauges
and counters, scraped) is read by the engine causes. A **derived** kind is an
engine cause: never stored, worked out from the worker's load timeline and its
engine windows, measured or estimated as marked. An event about the whole node (subject
`node`) concerns only the requests its kind's rule names: a thread's own wait or
stall is its cgroup's, never the node's. docs/tracing.md describes the ranking.
"""


def _use(k: EventKind) -> str:
    if k.role is Role.DURATION:
        return f"duration: “{k.label}”, grouped by {k.group_by}"
    if k.role is Role.AGGREGATE:
        return f"aggregate: time of `{k.cause}`"
    if k.role is Role.INSTANT:
        return f"instant{' (severe)' if k.severe else ''}: “{k.label}”"
    if k.role is Role.CONTEXT:
        return f"context: “{k.context}”"
    if k.role is Role.ENGINE:
        return "engine window: read by the engine causes"
    if k.role is Role.DERIVED:
        return f"derived cause ({'estimated' if k.estimated else 'measured'}): “{k.label}”"
    return "record"


ON_NODE = {
    "": "no request",
    "all": "every request",
    "port": "a request on the worker's port (every request when a port is unknown)",
    "victim": "a request of the victim's cgroup (every request when it is unknown)",
}


def render_events_doc() -> str:
    out = [HEADER, "| kind | subject | magnitude | meaning | in `explain` | with subject `node`, concerns |",
           "|---|---|---|---|---|---|"]
    for k in KINDS.values():
        out.append(f"| `{k.name}` | `{k.subject}` | {k.magnitude} | {_cell(k.meaning)} | {_cell(_use(k))} "
                   f"| {ON_NODE[k.on_node]} |")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
