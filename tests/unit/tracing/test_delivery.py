"""TCP retransmits to a request's client: an estimated delay outside its span
(agent/tracing/delivery.py), never a share of its e2e."""

import pytest

from agent.events import NODE, Event, EventStore
from agent.paths import Paths
from agent.services import Services
from agent.tracing.delivery import RTO_MIN_S, client_delay
from agent.tracing.metrics import RequestMetrics
from agent.tracing.pipeline import Enricher
from agent.tracing.recent import RecentRequests
from agent.tracing.scope import ScopeResolver
from agent.tracing.settings import ExplainSettings
from agent.worker.settings import WorkerSettings

from .spanfactory import T0, export, request

MS = 1_000_000
PORTS = frozenset({8000})


def rt(at_ms: float, state: str | None = "loss", client_port: int = 51000, sport: int = 8000) -> Event:
    attrs = {"sport": sport, "dport": client_port, "saddr": "10.0.0.1", "daddr": "10.0.0.2"}
    if state is not None:
        attrs["ca_state"] = state
    return Event(T0 + int(at_ms * MS), T0 + int(at_ms * MS), "tcp_retransmit", NODE, 1.0, attrs)


def alone(_t: int) -> int:
    return 0


def test_a_timeout_chain_is_the_minimum_timeout_plus_its_backoff():
    r = request(e2e=1.0, ttft=0.4, decode=0.6)  # 0 .. 1000 ms
    # A timeout at 1100 ms (three segments sent back to back), backed off to 1500 ms.
    d = client_delay(r, [rt(1100), rt(1102), rt(1104), rt(1500)], PORTS, alone)
    assert d.timeouts == 2 and d.retransmits == 4 and d.fast == 0
    assert d.estimated_s == pytest.approx(RTO_MIN_S + 0.4)
    assert d.where == ("after the span",) and d.flows == ("10.0.0.2:51000",) and d.attributed
    assert d.after_span_s == pytest.approx(0.5)  # the last retransmit, 500 ms after the span's end
    assert "the lost segments waited an estimated 600 ms" in d.text
    assert "its last retransmit left 500 ms after the span ended" in d.text


def test_separate_losses_are_separate_chains():
    r = request(e2e=5.0, ttft=0.4, decode=4.6)
    d = client_delay(r, [rt(500), rt(4000)], PORTS, alone)
    assert d.timeouts == 2 and d.estimated_s == pytest.approx(2 * RTO_MIN_S)
    assert d.where == ("while it streamed",) and d.after_span_s == 0.0


def test_fast_retransmits_and_probes_are_counted_not_timed():
    r = request(e2e=1.0, ttft=0.4, decode=0.6)
    d = client_delay(r, [rt(300, "recovery"), rt(301, "recovery"), rt(700, "open")], PORTS, alone)
    assert d.fast == 3 and d.timeouts == 0 and d.estimated_s == 0.0
    assert "3 fast retransmits or loss probes (about a round trip each, not timed)" in d.text


def test_without_the_congestion_state_nothing_is_timed():
    d = client_delay(request(e2e=1.0), [rt(300, None)], PORTS, alone)
    assert d.estimated_s == 0.0 and d.untimed_state and "not traced here" in d.text


def test_with_other_requests_in_flight_the_connection_is_not_known():
    d = client_delay(request(e2e=1.0), [rt(300), rt(700)], PORTS, lambda t: 2)
    assert not d.attributed and d.others_in_flight == 2
    assert "2 other requests of the worker in flight, so the connection is not known" in d.text
    assert "estimated" not in d.text and "measured" not in d.text


def test_a_local_client_is_the_far_end_whichever_side_sent():
    ev = rt(300, sport=51000, client_port=8000)  # the retransmit of a client on this host
    ev.attributes.update({"saddr": "127.0.0.1", "daddr": "127.0.0.1"})
    assert client_delay(request(e2e=1.0), [ev], PORTS, alone).flows == ("127.0.0.1:51000",)


# --- through the pipeline: the store, the port rule, the load timeline ----------------

def _enricher(store: EventStore) -> Enricher:
    s = ExplainSettings()
    worker = WorkerSettings(name="w", gpus=[0], port=8000, command=["vllm", "serve", "m"])
    return Enricher(store, s, ScopeResolver(Paths("/nonexistent"), [worker], Services()), RequestMetrics(),
                    RecentRequests(100))


def _only(e: Enricher, req):
    trace = req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    (ex,) = e.recent.by_trace(trace)
    return ex


def test_retransmits_after_a_span_reach_its_explanation_when_asked_and_name_it():
    store = EventStore()
    e = _enricher(store)
    req = export(1, pid=None, service="vllm-w", start_ns=T0, ttft=0.4, e2e=1.0)
    e.process(req)
    assert _only(e, req).verdict == "no known cause"
    # The response's last segments are lost; the timeouts come after the span was ingested.
    store.add(rt(1210))
    store.add(rt(1610))
    store.add(rt(1300, client_port=443, sport=9999))  # another port's flow: not the worker's
    ex = _only(e, req)
    assert ex.causes == [] and ex.explained_s == 0.0  # never a share of the span's e2e
    d = ex.client_delay
    assert d.retransmits == 2 and d.estimated_s == pytest.approx(0.6) and d.attributed
    assert ex.verdict == d.text and ex.to_json()["client_delay"]["estimated_seconds"] == pytest.approx(0.6)
    assert ex.to_json()["client_delay"]["after_span_seconds"] == pytest.approx(0.61)


def test_a_retransmit_while_two_requests_ran_is_named_on_neither():
    store = EventStore()
    e = _enricher(store)
    a = export(1, pid=None, service="vllm-w", start_ns=T0, ttft=0.4, e2e=1.0)
    b = export(1, pid=None, service="vllm-w", start_ns=T0 + 200 * MS, ttft=0.4, e2e=1.0)
    e.process(a)
    e.process(b)
    store.add(rt(500))
    for req in (a, b):
        ex = _only(e, req)
        assert not ex.client_delay.attributed and ex.verdict == "no known cause"


def test_a_clean_request_has_no_client_delay():
    store = EventStore()
    e = _enricher(store)
    req = export(1, pid=None, service="vllm-w", start_ns=T0, ttft=0.4, e2e=1.0)
    e.process(req)
    store.add(rt(5000))  # long after its tail
    ex = _only(e, req)
    assert ex.client_delay is None and ex.to_json()["client_delay"] is None


def test_a_flow_that_retransmitted_before_the_request_arrived_is_an_earlier_ones():
    r = request(start_ms=2000, e2e=1.0, ttft=0.4, decode=0.6)  # 2000 .. 3000 ms
    # The previous request's connection: its tail at 1800 ms and its FIN at 2100 ms.
    earlier = [rt(1800, client_port=40001), rt(2100, client_port=40001)]
    assert client_delay(r, earlier, PORTS, alone) is None
    d = client_delay(r, [*earlier, rt(2500, client_port=40002)], PORTS, alone)
    assert d.flows == ("10.0.0.2:40002",) and d.retransmits == 1


def test_each_flow_is_owned_by_who_could_own_it_when_it_first_retransmitted():
    r = request(e2e=1.0, ttft=0.4, decode=0.6)  # 0 .. 1000 ms
    # Its own flow times out at its end; the next request's flow probes 1.2 s in, while
    # that request (and the one between) were on the worker.
    evs = [rt(990, "open", client_port=40001), rt(1200, "loss", client_port=40001),
           rt(1900, "open", client_port=40002)]
    d = client_delay(r, evs, PORTS, lambda t: 2 if t >= T0 + 1500 * MS else 0)
    assert d.attributed and d.flows == ("10.0.0.2:40001",) and d.unknown_flows == ("10.0.0.2:40002",)
    assert d.after_span_s == pytest.approx(0.2) and d.retransmits == 2
    assert [s["flow"] for s in d.to_json()["segments"]] == ["10.0.0.2:40001"] * 2


def test_the_cli_prints_the_client_delay_outside_the_span():
    from agent.tracing.cli import format_explain

    store = EventStore()
    e = _enricher(store)
    req = export(1, pid=None, service="vllm-w", start_ns=T0, ttft=0.4, e2e=1.0)
    e.process(req)
    store.add(rt(1210))
    text = format_explain({"requests": [_only(e, req).to_json()]})
    assert "outside the span (its client, estimated):" in text
    assert "its last retransmit left 210 ms after the span ended" in text
    assert text.count("TCP retransmits to its client") == 2  # the verdict and the section
