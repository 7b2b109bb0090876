"""NVML's event path on a failing node (shared/reference/nvml-dcgm.md, D3): an XID on
a GPU that no longer answers is still counted, a set that keeps failing is rebuilt
without the lost GPU, and infernode_gpu_event_thread_up says whether events flow."""

from __future__ import annotations

import copy
import json

from tests.doubles.fake_pynvml import SCENARIOS, FakePynvml
from tests.unit.gpu.helpers import make_collector
from tests.unit.gpu.test_scenarios import series, value, wait_until


def _xid_node(timeline: list[dict], **extra: object) -> FakePynvml:
    sc = copy.deepcopy(json.loads((SCENARIOS / "xid.json").read_text()))
    sc["timeline"] = timeline
    sc.update(extra)
    return FakePynvml(sc)


def _xid_count(c, gpu: str, xid: str) -> float:
    found = series(list(c.collect()), "infernode_gpu_xid_errors_total", gpu=gpu, xid=xid)
    return found[0].value if found else 0.0


def test_xid_on_a_gpu_whose_uuid_no_longer_reads_is_counted() -> None:
    fake = _xid_node([{"step": 1, "device": 0, "lost": True, "event": {"type": "xid", "data": 95}}])
    c, fake, store = make_collector(fake)
    c.start()
    try:
        assert c.wait_first_poll(5)
        fake.advance()
        assert wait_until(lambda: _xid_count(c, "0", "95") == 1)
        ev = store.query(0, 2**62, kinds=["gpu_xid"])
        assert [(e.subject, e.attributes["xid"], e.attributes["gpu"]) for e in ev] == [
            (f"gpu:{fake.devices[0]['uuid']}", 95, 0)]
        assert fake.calls["nvmlDeviceGetUUID"] == 2, "only discovery asked for UUIDs"
        assert _xid_count(c, "1", "95") == 0
    finally:
        c.stop()


def test_a_set_failing_on_a_lost_gpu_is_rebuilt_and_the_others_events_flow() -> None:
    fake = _xid_node([{"step": 1, "device": 0, "lost": True},
                      {"step": 2, "device": 1, "event": {"type": "xid", "data": 13}}],
                     event_wait_fails_when_lost=True)
    c, fake, store = make_collector(fake, event_retry_interval=0.05)
    c.start()
    try:
        assert c.wait_first_poll(5)
        assert value(list(c.collect()), "infernode_gpu_event_thread_up") == 1
        fake.advance()  # GPU 0 lost: every wait on the set now fails
        assert wait_until(lambda: c._events is not None and c._events.rebuilds >= 1)
        assert [d.index for d in c._events.registered] == [1], "rebuilt without the lost GPU"
        assert wait_until(lambda: value(list(c.collect()), "infernode_gpu_event_thread_up") == 1)
        fake.advance()
        assert wait_until(lambda: _xid_count(c, "1", "13") == 1)
    finally:
        c.stop()
    assert fake.live_event_sets == 0, "the old set was freed, and the new one at stop"


def test_event_thread_down_while_waits_fail() -> None:
    fake = _xid_node([{"step": 1, "device": 0, "lost": True}, {"step": 1, "device": 1, "lost": True}],
                     event_wait_fails_when_lost=True)
    c, fake, store = make_collector(fake, event_retry_interval=0.05)
    c.start()
    try:
        assert c.wait_first_poll(5)
        fake.advance()
        assert wait_until(lambda: value(list(c.collect()), "infernode_gpu_event_thread_up") == 0)
        # No GPU registers any more: the thread keeps trying, and says events do not flow.
        assert wait_until(lambda: c._events is not None and c._events.rebuilds >= 1)
        assert value(list(c.collect()), "infernode_gpu_event_thread_up") == 0
    finally:
        c.stop()
