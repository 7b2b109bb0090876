"""The typed services registry: providers are taken back from exactly their owner."""

from __future__ import annotations

from agent.services import Services
from tests.unit.gpu.helpers import make_collector


class Owner:
    def model_of(self, worker: str) -> str | None:
        return worker

    def refresh(self) -> int:
        return 1


def test_withdraw_clears_only_the_owners_providers() -> None:
    a, b = Owner(), Owner()
    s = Services(worker_model_of=a.model_of, ebpf_refresh_scope=b.refresh)
    assert s.withdraw(a) == ["worker_model_of"]
    assert s.worker_model_of is None and s.ebpf_refresh_scope is not None
    assert s.withdraw(a) == []
    assert s.published() == ["ebpf_refresh_scope"]


def test_a_stopped_gpu_collector_leaves_no_provider_behind() -> None:
    """The review's case: a reload that turns GPU collection off must not leave the
    old collector's bound methods for the span scope and the worker to call."""
    from agent.catalog import Catalog
    from agent.runtime import CollectorRuntime

    c, _, _ = make_collector("h100_sxm_8x")
    services = c.ctx.services
    rt = CollectorRuntime([c], Catalog(), {"gpu": 5.0})
    rt.start()
    assert c.wait_first_poll(10)
    assert sorted(services.published()) == ["gpu_index_of_uuid", "gpu_open_events", "gpu_topology", "gpu_usage"]
    rt.stop()
    assert services.published() == []
