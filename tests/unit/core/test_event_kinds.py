"""The event-kind catalog is checked as the metric catalog is: every kind is
declared consistently, has a writer in the product, and a rule in correlation
that does what its role says; the store refuses a kind it does not declare."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agent.event_kinds import KINDS, Role, UndeclaredEventKind, lint
from agent.events import NODE, Event, EventStore
from agent.tracing.correlate import explain
from agent.tracing.ranking import RequestScope
from agent.tracing.spans import RequestSpan

REPO = Path(__file__).resolve().parents[3]
# Readers of events, not writers.
READERS = ("agent/event_kinds.py", "agent/event_docs.py", "agent/tracing/", "agent/worker/gpufaults.py")


def test_the_catalog_is_consistent() -> None:
    assert lint() == []
    assert all(k.role in Role for k in KINDS.values())


def test_lint_names_what_is_wrong() -> None:
    from agent.event_kinds import EventKind

    bad = {
        "a": EventKind("a", "node", "count", "x", Role.DURATION),
        "b": EventKind("b", "node", "count", "x", Role.AGGREGATE, cause="nonesuch"),
        "c": EventKind("c", "node", "count", "x", Role.CONTEXT),
        "d": EventKind("d", "node", "count", "x", Role.RECORD, severe=True),
    }
    assert lint(bad) == ["a: a duration kind needs a label", "b: aggregate of an undeclared kind 'nonesuch'",
                         "c: a context kind needs its wording", "d: only instants are severe"]


def _written_kinds() -> dict[str, list[str]]:
    """Kind names passed to an event's constructor in the product: as an argument
    of Event(...), of a writer helper (`*_event`, `_Window`), or assigned to a
    variable named `kind` (the writer then passes it)."""
    out: dict[str, list[str]] = {}
    for pkg in ("agent", "collectors", "tuning"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            if rel.startswith(READERS):
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                values: list[ast.AST] = []
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", "")
                    if name in ("Event", "_Window") or name.endswith("_event"):
                        values = [*node.args, *(k.value for k in node.keywords)]
                elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "kind"
                                                          for t in node.targets):
                    values = [node.value]
                for v in values:
                    for c in ast.walk(v):
                        if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value in KINDS:
                            out.setdefault(c.value, []).append(f"{rel}:{node.lineno}")
    return out


def test_every_declared_kind_has_a_writer() -> None:
    written = _written_kinds()
    assert [k for k in KINDS if k not in written and KINDS[k].role is not Role.DERIVED] == []
    assert [k for k in KINDS if k in written and KINDS[k].role is Role.DERIVED] == []


def test_every_derived_cause_is_derived_and_nothing_else_is() -> None:
    """The engine causes name their kind as Ranked(...)'s first argument."""
    tree = ast.parse((REPO / "agent/tracing/engine_causes.py").read_text())
    made = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", "") == "Ranked" and n.args and isinstance(n.args[0], ast.Constant)}
    assert made == {k for k, v in KINDS.items() if v.role is Role.DERIVED}


def test_the_store_refuses_a_derived_cause() -> None:
    store = EventStore(1 << 20)
    with pytest.raises(UndeclaredEventKind, match="derived cause"):
        store.add(Event(T0, T0 + 1, "queueing", "worker:w", 1.0, {}))


T0 = 1_700_000_000 * 10**9
MS = 1_000_000


def _request() -> RequestSpan:
    return RequestSpan(trace_id="t" * 32, span_id="s" * 16, start_ns=T0, end_ns=T0 + 1000 * MS,
                       e2e=1.0, ttft=0.5, queue=0.1, prefill=0.3, decode=0.5, prompt_tokens=10,
                       completion_tokens=10, pid=1, service_name="w")


ATTRS = {"cpu": 1, "reason": "HwSlowdown", "device": "nvme0n1", "tunable": "vm.swappiness", "current": "60",
         "desired": "10", "profile": "p", "component": "cuda", "version": "12", "pci_bus_id": "0000:18:00.0"}


def _subject(form: str) -> str:
    """A subject of the form the catalog declares ("gpu:<uuid>" -> "gpu:GPU-1")."""
    for prefix, subject in (("gpu:", "gpu:GPU-1"), ("dev:", "dev:nvme0n1"), ("cgroup:", "cgroup:/w.service"),
                            ("worker:", "worker:w")):
        if form.startswith(prefix):
            return subject
    assert form == NODE, form
    return NODE


@pytest.mark.parametrize("name", sorted(KINDS))
def test_correlation_does_what_each_kind_s_role_says(name: str) -> None:
    k = KINDS[name]
    ev = Event(T0 + 100 * MS, T0 + 300 * MS, name, _subject(k.subject), 0.2, ATTRS)
    ex = explain(_request(), RequestScope("w"), [ev])
    kinds = [c.kind for c in ex.causes]
    if k.role is Role.DURATION:
        assert kinds == [name] and ex.causes[0].explained_s == pytest.approx(0.2)
    elif k.role is Role.AGGREGATE:
        assert kinds == [k.cause] and ex.causes[0].explained_s > 0
    elif k.role is Role.INSTANT:
        assert kinds == [name] and ex.causes[0].explained_s == 0
    else:
        assert kinds == []
    if k.role is Role.CONTEXT:
        assert ex.context == [k.context_text(ATTRS)] and "?" not in ex.context[0]
    else:
        assert ex.context == []
    assert ex.events == [ev]


def test_the_store_refuses_an_undeclared_kind() -> None:
    store = EventStore(1 << 20)
    with pytest.raises(UndeclaredEventKind, match="'runqueue_wiat'"):
        store.add(Event(T0, T0, "runqueue_wiat", NODE))
    store.add(Event(T0, T0, "runqueue_wait", NODE))
    assert store.added_total == {"runqueue_wait": 1}
